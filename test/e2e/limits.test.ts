// Sandbox jobs' resource limits (issue 10, "Also"): set in config.json, reported in status.json, a fork
// bomb held at its process limit and ended, a job past its memory limit ended, both saying why; the CPU
// share written to the job's cgroup; every process and cgroup gone afterwards.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { detectCgroups, removeSetup } from '../../nodes/cgroups.js'
import { herdsUp } from './harness.js'

const probe = detectCgroups()
removeSetup(probe)
const has = (controller: string): boolean => probe.hierarchies.some((h) => h.controllers.includes(controller as never))
const up = await herdsUp(t)
const box = join(up.nodeDir, 'sandboxes', 'lim')
await mkdir(box)
const status = async (): Promise<Record<string, unknown>> => JSON.parse(await readFile(join(box, 'exec', 'status'), 'utf8'))
const run = async (cmd: string): Promise<Record<string, unknown>> => {
  await writeFile(join(box, 'exec', 'cmd'), cmd + '\n')
  await readFile(join(box, 'exec', 'exit'), 'utf8')
  return status()
}
/** The node's pid (herds up's process): its job cgroups are named herds-<pid>-<n>. */
const nodePid = up.proc.child.pid!

t.test('the defaults, and what enforces them, are in status.json; config.json sets them', async (t) => {
  const report = JSON.parse(await readFile(join(box, 'status.json'), 'utf8')).limits
  t.match(report, { processes: 1024, cpuWeight: 100, memoryMiB: Number })
  t.ok(report.memoryMiB >= 64)
  if (has('pids')) t.match(report.enforcedBy.processes, /^cgroup v[12] \(pids\.max\)$/)
  if (has('memory')) t.match(report.enforcedBy.memory, /^cgroup v[12] \(memory\.(max|limit_in_bytes)\)$/)
  await writeFile(join(box, 'config.json'), JSON.stringify({ limits: { processes: 0, memoryMiB: 512 } }))
  const changed = JSON.parse(await readFile(join(box, 'status.json'), 'utf8')).limits
  t.match(changed, { processes: 0, memoryMiB: 512, cpuWeight: 100, enforcedBy: { processes: 'no limit (0)' } })
  t.equal(spawnSync('sh', ['-c', `echo '{"limits":{"processes":-1}}' > '${join(box, 'config.json')}'`]).status, 1, 'a negative limit refused')
  t.match(await readFile(join(box, 'exec', 'error'), 'utf8'), /config\.json: limits\.processes/)
})

t.test('a fork bomb is held at its process limit, then ended, saying why', { skip: !has('pids') && 'no pids cgroup here' }, async (t) => {
  await writeFile(join(box, 'config.json'), JSON.stringify({ limits: { processes: 50 } }))
  const ended = await run('i=0; while [ $i -lt 200 ]; do sleep 41.3 & i=$((i+1)); done; wait')
  // The shell may give up on a refused fork before the node ends it: then it says what happened, not that the node ended it.
  t.match(ended.error, /^(ended by the node: )?past its process limit \(50\): \d+ forks? w(as|ere) refused \(raise "limits" in config\.json\)$/)
  t.equal(spawnSync('pgrep', ['-f', 'sleep 41.3']).status, 1, 'no sleep left')
  const output = await readFile(join(box, 'exec', 'output'), 'utf8')
  t.match(output, /fork|Resource temporarily unavailable|Cannot/i, 'the job itself saw a fork refused')
  // A program that shrugs off refused forks and stays: the node ends it.
  // stdio 'ignore': a refused fork then leaves no pipe whose error could end the program itself.
  const stubborn = `process.on('uncaughtException', () => {}); const { spawn } = require('child_process'); for (let i = 0; i < 200; i++) { try { spawn('sleep', ['41.3'], { stdio: 'ignore' }).on('error', () => {}) } catch {} } setTimeout(() => {}, 60000)`
  // NODE_OPTIONS=: tap's spawn hook hands every child its preload, which a sandbox cannot see when the checkout is under /tmp.
  const held = await run(`NODE_OPTIONS= ${process.execPath} -e "${stubborn}"`)
  t.match(held.error, /^ended by the node: past its process limit \(50\)/, JSON.stringify(held))
  t.equal(held.state, 'killed')
  t.equal(spawnSync('pgrep', ['-f', 'sleep 41.3']).status, 1, 'no sleep left')
})

t.test('a job past its memory limit is ended, saying why', { skip: !has('memory') && 'no memory cgroup here' }, async (t) => {
  await writeFile(join(box, 'config.json'), JSON.stringify({ limits: { memoryMiB: 64 } }))
  // 200 MiB into a shell variable: the shell itself grows past the limit.
  const ended = await run('x=$(head -c 209715200 /dev/zero | tr "\\0" a); echo "kept ${#x} bytes"')
  t.match(ended.error, /^(ended by the node: )?past its memory limit \(64 MiB\): the kernel killed (a process|\d+ processes) for memory/)
  t.notMatch(await readFile(join(box, 'exec', 'output'), 'utf8'), /kept 209715200 bytes/)
  const fine = await run('x=$(head -c 10485760 /dev/zero | tr "\\0" a); echo "kept ${#x} bytes"')
  t.equal(fine.error, null, 'within the limit, nothing to say')
  t.equal(await readFile(join(box, 'exec', 'stdout'), 'utf8'), 'kept 10485760 bytes\n')
})

t.test('the CPU share is the job cgroup\'s', { skip: !has('cpu') && 'no cpu cgroup here' }, async (t) => {
  await writeFile(join(box, 'config.json'), JSON.stringify({ limits: { cpuWeight: 50 } }))
  await writeFile(join(box, 'exec', 'cmd'), 'sleep 30\n')
  const { pid, id } = await status() as { pid: number, id: number }
  const hierarchy = probe.hierarchies.find((h) => h.controllers.includes('cpu'))!
  const dir = join(hierarchy.dir, '..', `herds-${nodePid}-1`, `lim:${id}`)
  // The job's first process enters its cgroup as it starts.
  for (let i = 0; i < 50 && !readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').includes(String(pid)); i++) spawnSync('sleep', ['0.1'])
  t.ok(readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').includes(String(pid)), 'the job is in a cgroup of its own, named for it')
  t.equal(readFileSync(join(dir, hierarchy.version === 2 ? 'cpu.weight' : 'cpu.shares'), 'utf8').trim(), hierarchy.version === 2 ? '50' : '512')
  await writeFile(join(box, 'exec', 'ctl'), 'kill\n')
  await readFile(join(box, 'exec', 'exit'), 'utf8')
  t.notOk(existsSync(dir), 'its cgroup is removed when it ends')
})

t.test('when the node stops, its cgroups go', { skip: probe.hierarchies.length === 0 && 'no cgroups here' }, async (t) => {
  const dirs = probe.hierarchies.map((h) => join(h.dir, '..'))
  const ours = (): string[] => dirs.flatMap((dir) => spawnSync('ls', [dir], { encoding: 'utf8' }).stdout.split('\n').filter((n) => n.startsWith(`herds-${nodePid}-`)))
  t.ok(ours().length > 0, 'made while it runs')
  await up.proc.stop()
  t.same(ours(), [], 'none left')
})
