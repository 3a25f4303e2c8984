// Jobs inherit none of the node's descriptors (issue 10, point 0): under `herds up` the host's
// and the node's lmdb and the mount's /dev/fuse are open in the one process, without close-on-exec.
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import t from 'tap'
import { herdsUp } from './harness.js'

const up = await herdsUp(t)
const exec = join(up.nodeDir, 'exec')

/** Descriptor number → what it points at, from `ls -l <dir>` output. */
function parseListing (text: string): Record<string, string> {
  const fds: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const match = line.match(/ (\d+) -> (.*)$/)
    if (match) fds[match[1]] = match[2]
  }
  return fds
}

/** What a process's descriptors point at, seen from outside (the test runs as the node's user). */
function descriptorsOf (pid: number): Record<string, string> {
  const dir = `/proc/${pid}/fd`
  const fds: Record<string, string> = {}
  for (const fd of readdirSync(dir)) {
    try { fds[fd] = readlinkSync(join(dir, fd)) } catch { /* closed meanwhile */ }
  }
  return fds
}

/** The processes of a process group. */
function groupOf (pgid: number): number[] {
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number).filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) === pgid
    } catch { return false }
  })
}

/** Descriptors that would hand a job the node's state: its databases, anything under HERDS_HOME, /dev/fuse. */
const dangerous = (fds: Record<string, string>): string[] =>
  Object.entries(fds).filter(([, target]) => target.includes(up.home) || /data\.mdb|lock\.mdb|\/dev\/fuse/.test(target)).map(([fd, target]) => `${fd} -> ${target}`)

t.test('a job in the node\'s exec/ starts with stdin, stdout and stderr only', async (t) => {
  await writeFile(join(exec, 'cmd'), 'ls -l /proc/$$/fd\n')
  const fds = parseListing(await readFile(join(exec, 'stdout'), 'utf8'))
  t.same(Object.keys(fds).sort(), ['0', '1', '2'], `the shell holds ${JSON.stringify(fds)}`)
  t.same(dangerous(fds), [])
  t.equal(await readFile(join(exec, 'exit'), 'utf8'), '0\n')
})

const hasBwrap = (process.env.PATH ?? '').split(delimiter).some((dir) => dir && existsSync(join(dir, 'bwrap')))

t.test('a fenced sandbox job, and bwrap around it, hold nothing of the node', { skip: hasBwrap ? false : 'no bwrap on this machine' }, async (t) => {
  const box = join(up.nodeDir, 'sandboxes', 'fds')
  await mkdir(box)
  t.equal(JSON.parse(await readFile(join(box, 'status.json'), 'utf8')).fence, 'bwrap')
  // Inside: the shell's descriptors and bwrap's (PID 1 there); then wait on stdin, so the outside can look too.
  await writeFile(join(box, 'exec', 'cmd'), 'ls -l /proc/$$/fd; echo ---; ls -l /proc/1/fd; echo ---; cat\n')
  const pid = JSON.parse(await readFile(join(box, 'exec', 'status'), 'utf8')).pid as number
  let inside = ''
  for (let i = 0; i < 100 && (inside.match(/---/g) ?? []).length < 2; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    inside = readFileSync(join(up.home, 'nodes', up.name, 'sandboxes', 'fds', 'jobs', '1', 'stdout'), 'utf8')
  }
  const [shell, init] = inside.split('---\n').map(parseListing)
  t.same(Object.keys(shell).sort(), ['0', '1', '2'], `the shell holds ${JSON.stringify(shell)}`)
  t.same(dangerous(init), [], `bwrap inside holds ${JSON.stringify(init)}`)
  const group = groupOf(pid)
  t.ok(group.length >= 2, `the job's group: ${group.join(' ')}`)
  for (const member of group) {
    const fds = descriptorsOf(member)
    t.same(dangerous(fds), [], `process ${member} (${readFileSync(`/proc/${member}/comm`, 'utf8').trim()}) holds ${JSON.stringify(fds)}`)
  }
  await writeFile(join(box, 'exec', 'ctl'), 'eof\n')
  t.equal(await readFile(join(box, 'exec', 'exit'), 'utf8'), '0\n')
})

t.test('a terminal job starts with its terminal as 0, 1 and 2, and nothing else', async (t) => {
  const id = (await readFile(join(exec, 'new'), 'utf8')).trim()
  const job = join(exec, 'jobs', id)
  await writeFile(join(job, 'tty'), '{}')
  await writeFile(join(job, 'cmd'), 'ls -l /proc/$$/fd\n')
  t.equal(await readFile(join(job, 'exit'), 'utf8'), '0\n')
  const fds = parseListing((await readFile(join(job, 'stdout'), 'utf8')).replace(/\r/g, ''))
  t.same(Object.keys(fds).sort(), ['0', '1', '2'], `the shell holds ${JSON.stringify(fds)}`)
  t.ok(Object.values(fds).every((target) => /^\/dev\/pts\/\d+$/.test(target)), 'each is the job\'s own terminal')
  t.same(dangerous(fds), [])
})

t.test('after herds up stops, a process a job left behind holds no /dev/fuse', async (t) => {
  await writeFile(join(exec, 'cmd'), 'setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!\n')
  const pid = Number((await readFile(join(exec, 'stdout'), 'utf8')).trim())
  t.teardown(() => { try { process.kill(pid, 'SIGKILL') } catch { /* gone */ } })
  // $! is setsid's until it has run sleep in its place.
  for (let i = 0; i < 50 && !readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('sleep'); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  t.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /^sleep\x00300/, 'it outlives its job')
  t.equal(await up.proc.stop(), 0, 'herds up stopped')
  t.ok(existsSync(`/proc/${pid}`), 'the left-behind process still runs')
  t.same(Object.keys(descriptorsOf(pid)).sort(), ['0', '1', '2'])
  t.same(dangerous(descriptorsOf(pid)), [], 'not the mount\'s /dev/fuse, nor a database')
})
