// Limits without cgroups (rlimits and nice, run for real), the files a cgroup is given, the words of a
// reason, and how the mount table and /proc/self/cgroup are read.
import { spawnSync } from 'node:child_process'
import t from 'tap'
import { cpuShares, limitFiles, parseCgroupMounts, parseProcCgroup } from '../../nodes/cgroups.js'
import { Limiter, LimitsSchema, LIMITS_SCRIPT, niceFor, pastLimits } from '../../nodes/limits.js'

const none = { hierarchies: [], notes: ['no cgroups on this OS'] }
const limits = LimitsSchema.parse({ processes: 50, memoryMiB: 32, cpuWeight: 50 })
/** Runs `cmd` under the limits script with `args`. */
const under = (args: string[], cmd: string): ReturnType<typeof spawnSync> => spawnSync('/bin/sh', ['-c', LIMITS_SCRIPT, 'herds-limits', ...args, '--', '/bin/sh', '-c', cmd], { encoding: 'utf8' })

t.test('without cgroups: RLIMIT_DATA, RLIMIT_NPROC (not for root, who is exempt) and nice', async (t) => {
  const user = new Limiter(none, 1000, 'linux').prepare('web:1', limits)
  t.equal(user.cgroup, undefined)
  t.same(user.words.slice(0, 4), ['/bin/sh', '-c', LIMITS_SCRIPT, 'herds-limits'])
  t.match(user.words.slice(4).join(' '), /^data=32768 nproc=\d+ nice=3 --$/)
  const root = new Limiter(none, 0, 'linux')
  t.notMatch(root.prepare('web:1', limits).words.slice(4).join(' '), /nproc=/)
  t.match(root.report(limits).enforcedBy, { processes: /^none: root is exempt/, memory: /^RLIMIT_DATA/, cpu: /^nice/ })
  t.match(new Limiter(none, 1000, 'linux').report(limits).notes, [/no cgroups/, /counts all the processes of the node's user/, /sees an allocation fail/])
  t.same(new Limiter(none, 0, 'linux').prepare('web:1', LimitsSchema.parse({ processes: 0, memoryMiB: 0 })).words, [], 'nothing to set: no words')
})

t.test('the limits script, for real: memory past RLIMIT_DATA fails, nice is applied, a cgroup it cannot enter refuses the job', async (t) => {
  const grow = 'x=$(head -c 104857600 /dev/zero | tr "\\0" a); echo "kept ${#x}"'
  t.equal(under([], grow).stdout, 'kept 104857600\n', 'without a limit')
  const limited = under(['data=32768'], grow)
  t.not(limited.status, 0)
  t.notMatch(limited.stdout, /kept/)
  t.equal(under(['nice=7'], 'nice').stdout, '7\n')
  const refused = under(['cgroup=/nonexistent/cgroup.procs'], 'echo ran')
  t.equal(refused.status, 125)
  t.match(refused.stderr, /herds: could not enter the job's cgroup/)
  t.equal(refused.stdout, '')
})

t.test('what a cgroup is given, v1 and v2', async (t) => {
  const bytes = { processes: 50, memoryBytes: 64 * 1024 * 1024, cpuWeight: 50 }
  t.same(limitFiles(2, ['pids', 'memory', 'cpu'], bytes), [
    ['pids.max', '50'], ['memory.max', '67108864'], ['memory.swap.max', '0'], ['memory.oom.group', '1'], ['cpu.weight', '50'],
  ])
  t.same(limitFiles(1, ['pids', 'memory', 'cpu'], { ...bytes, processes: 0, memoryBytes: 0 }), [
    ['pids.max', 'max'], ['memory.limit_in_bytes', '-1'], ['memory.memsw.limit_in_bytes', '-1'], ['cpu.shares', '512'],
  ])
  t.same([cpuShares(1), cpuShares(100), cpuShares(10_000)], [10, 1024, 102_400])
  t.same([niceFor(100), niceFor(200), niceFor(50), niceFor(1)], [0, 0, 3, 19])
})

t.test('why a job was past its limits, in words', async (t) => {
  t.equal(pastLimits({ forksRefused: 0, oomKills: 0 }, limits), undefined)
  t.equal(pastLimits({ forksRefused: 1, oomKills: 2 }, limits), 'past its memory limit (32 MiB): the kernel killed 2 processes for memory; and past its process limit (50): 1 fork was refused')
})

t.test('the cgroup mounts and the node\'s own cgroups are read as the kernel writes them', async (t) => {
  const mounts = parseCgroupMounts([
    '30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate',
    '31 23 0:27 /process_api /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory',
    '32 23 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct',
  ].join('\n'))
  t.same(mounts, [
    { version: 2, mountpoint: '/sys/fs/cgroup', root: '/', controllers: [] },
    { version: 1, mountpoint: '/sys/fs/cgroup/memory', root: '/process_api', controllers: ['rw', 'memory'] },
    { version: 1, mountpoint: '/sys/fs/cgroup/cpu,cpuacct', root: '/', controllers: ['rw', 'cpu', 'cpuacct'] },
  ])
  t.same(parseProcCgroup('4:memory:/process_api/x\n1:cpu,cpuacct:/\n0::/user.slice/a:b\n'), [
    { controllers: ['memory'], path: '/process_api/x' },
    { controllers: ['cpu', 'cpuacct'], path: '/' },
    { controllers: [], path: '/user.slice/a:b' },
  ])
})
