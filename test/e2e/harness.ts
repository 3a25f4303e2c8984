/**
 * Runs the real herds command in its own process group, in a temporary
 * HERDS_HOME, on port 0; and cleans up whatever happens: the processes, the
 * FUSE mount and the temporary directory.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const HERDS_BIN = resolve(fileURLToPath(import.meta.url), '../../../dist/cli/herds.js')

/** What tap's `t` offers that the harness needs. */
export interface Teardown { teardown (fn: () => unknown): void }

export interface HerdsProcess {
  child: ChildProcess
  /** Everything it printed so far, stdout and stderr. */
  output (): string
  /** Resolves with the first match of `pattern` in its output. */
  waitFor (pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>
  /** Resolves with the exit code (or signal name) when it ends. */
  exited: Promise<number | string>
  /** Sends a signal to its whole process group. */
  signal (signal: NodeJS.Signals): void
  /** SIGTERM, then SIGKILL after a grace; resolves when it is gone. */
  stop (): Promise<number | string>
}

/** A fresh temporary directory, removed at teardown. */
export function tempDir (t: Teardown, prefix = 'herds-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  const clean = (): void => {
    killProcessesIn(dir)
    try { rmSync(dir, { recursive: true, force: true }) } catch { /* a leaked mount; reported by its own test */ }
  }
  const forget = atExit(clean)
  t.teardown(() => { forget(); clean() })
  return dir
}

/** What must happen even when a test file dies before its teardowns run (its setup threw); newest first, as teardowns. */
const exitWork: Array<() => void> = []
process.once('exit', () => {
  for (const work of exitWork.splice(0).reverse()) {
    try { work() } catch { /* the rest still runs */ }
  }
})

/** Runs `work` at exit unless the returned function is called first. */
function atExit (work: () => void): () => void {
  exitWork.push(work)
  return () => { const at = exitWork.indexOf(work); if (at >= 0) exitWork.splice(at, 1) }
}

/**
 * Kills what still runs from `dir` or names it: a job whose node was killed
 * (jobs outlive their node by design) would otherwise outlive the test. Runs
 * last (teardowns run newest first), after the herds processes have stopped.
 */
function killProcessesIn (dir: string): void {
  let pids: string[]
  try { pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid) } catch { return } // no /proc: macOS
  for (const pid of pids) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      let cwd = ''
      try { cwd = readlinkSync(`/proc/${pid}/cwd`) } catch { /* gone, or not ours to read */ }
      if (cmdline.includes(dir + '/') || cmdline.includes(dir + '\0') || cwd === dir || cwd.startsWith(dir + '/')) process.kill(Number(pid), 'SIGKILL')
    } catch { /* gone meanwhile */ }
  }
}

/** Starts `herds <args>` with HERDS_HOME=home (and `env` added to the environment). */
export function spawnHerds (t: Teardown, args: string[], home: string, env: Record<string, string> = {}): HerdsProcess {
  const child = spawn(process.execPath, [HERDS_BIN, ...args], {
    env: { ...process.env, HERDS_HOME: home, ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  const listeners = new Set<() => void>()
  const onData = (chunk: Buffer): void => { out += chunk.toString(); for (const l of listeners) l() }
  child.stdout!.on('data', onData)
  child.stderr!.on('data', onData)
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, sig) => resolve(code ?? sig ?? -1)))
  let gone = false
  void exited.then(() => { gone = true; for (const l of listeners) l() })
  const signal = (sig: NodeJS.Signals): void => {
    try { process.kill(-child.pid!, sig) } catch { /* gone */ }
  }
  // A test file that dies before its teardowns run leaves no herds behind.
  const forget = atExit(() => signal('SIGKILL'))
  const stop = async (): Promise<number | string> => {
    forget()
    signal('SIGTERM')
    const timer = setTimeout(() => signal('SIGKILL'), 5_000)
    const code = await exited
    clearTimeout(timer)
    signal('SIGKILL') // anything left in its group
    return code
  }
  t.teardown(stop)
  return {
    child,
    output: () => out,
    exited,
    signal,
    stop,
    waitFor: (pattern, timeoutMs = 15_000) => new Promise((resolve, reject) => {
      const check = (): void => {
        const match = out.match(pattern)
        if (match) { done(); resolve(match) } else if (gone) { done(); reject(new Error(`herds ${args[0]} exited before printing ${pattern}:\n${out}`)) }
      }
      const timer = setTimeout(() => { done(); reject(new Error(`timed out waiting for ${pattern}; output:\n${out}`)) }, timeoutMs)
      const done = (): void => { clearTimeout(timer); listeners.delete(check) }
      listeners.add(check)
      check()
    }),
  }
}

/** Is `dir` a mountpoint right now? */
export function isMounted (dir: string): boolean {
  return readFileSync('/proc/mounts', 'utf8').split('\n').some((line) => line.split(' ')[1] === dir)
}

/**
 * Mounts a small tmpfs at `dir` (made if missing), to fill for real, and unmounts it at teardown.
 * Call it before starting herds, so its teardown runs after herds has stopped (teardowns run last first).
 */
export function tmpfsAt (t: Teardown, dir: string, options: string): void {
  mkdirSync(dir, { recursive: true })
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir])
  t.teardown(() => { try { execFileSync('umount', ['-l', dir]) } catch { /* gone */ } })
}

/** Unmounts at teardown, in case the process under test could not. */
export function unmountAtTeardown (t: Teardown, dir: string): void {
  // Also when the test file dies before its teardowns run (its setup threw): no mount outlives it.
  const forget = atExit(() => unmountNow(dir))
  t.teardown(() => {
    forget()
    unmountNow(dir)
  })
}

/** Detaches a mount that is still there, with whichever tool this machine has. */
function unmountNow (dir: string): void {
  if (!isMounted(dir)) return
  for (const [tool, args] of [['fusermount3', ['-uz', dir]], ['fusermount', ['-uz', dir]], ['umount', ['-l', dir]]] as const) {
    try { execFileSync(tool, args, { stdio: 'ignore' }); return } catch { /* not here, or already gone: the next */ }
  }
}

export interface Up {
  proc: HerdsProcess
  home: string
  url: string
  mountpoint: string
  name: string
  /** The node's directory in the mount. */
  nodeDir: string
  /** The host's admin token, for other nodes and mounts. */
  adminToken: string
}

/** The admin token a host with this HERDS_HOME made. */
export function adminToken (home: string): string {
  return readFileSync(join(home, 'host', 'admin.token'), 'utf8').trim()
}

/** Runs `herds up` as a user would, on port 0, in a temporary home and mountpoint. */
export async function herdsUp (t: Teardown, name = 'studio', extra: string[] = [], env: Record<string, string> = {}): Promise<Up> {
  const root = tempDir(t)
  const home = join(root, 'home')
  const mountpoint = join(root, 'mnt')
  // Teardowns run last-registered first: stop the process before unmounting and removing.
  unmountAtTeardown(t, mountpoint)
  const proc = spawnHerds(t, ['up', '--port', '0', '--name', name, '--mount', mountpoint, ...extra], home, env)
  const url = (await proc.waitFor(/host\s+(ws:\/\/\S+)/))[1]
  await proc.waitFor(/Ctrl-C to stop/)
  return { proc, home, url, mountpoint, name, nodeDir: join(mountpoint, 'nodes', name), adminToken: adminToken(home) }
}

export interface HostAndNode {
  host: HerdsProcess
  node: HerdsProcess
  url: string
  /** The host's admin token. */
  admin: string
  hostHome: string
}

/** Starts `herds host` and `herds node` as two processes (so either can be killed or counted alone), on port 0. */
export async function startHostAndNode (t: Teardown, name = 'studio'): Promise<HostAndNode> {
  const hostHome = tempDir(t)
  const host = spawnHerds(t, ['host', '--port', '0'], hostHome)
  const url = (await host.waitFor(/host\s+(ws:\/\/\S+)/))[1]!
  const admin = adminToken(hostHome)
  const node = spawnHerds(t, ['node', '--host', url, '--name', name], tempDir(t), { HERDS_TOKEN: admin })
  await node.waitFor(new RegExp(`node\\s+${name}\\n`))
  return { host, node, url, admin, hostHome }
}

/** The fence's refusal when a FUSE mount appeared as a job started (docs/isolation.md). */
export const FENCE_RACE = /^herds: a FUSE mount appeared at \S+ as the job started; run it again\n$/

/**
 * Runs a sandbox job by `start` again while the fence refuses it because
 * another test file's mount appeared as it started (see runJob); `stderr` and
 * `exit` say what the job said.
 */
export async function againPastFenceRace<T> (start: () => Promise<T> | T, said: (result: T) => { stderr: string, exit: number | null }): Promise<T> {
  for (let tries = 1; ; tries++) {
    const result = await start()
    const { stderr, exit } = said(result)
    if (exit !== 125 || !FENCE_RACE.test(stderr) || tries === 5) return result
  }
}

/**
 * Runs `cmd` through the exec folder `exec` and reads its exit and output.
 * The suite runs files side by side, and another file's mount appearing as a
 * sandbox job starts makes the fence refuse it, as it should: the job is run
 * again then, as the refusal asks, rather than fail a test about something else.
 */
export async function runJob (exec: string, cmd: string): Promise<{ output: string, exit: string }> {
  for (let tries = 1; ; tries++) {
    await writeFile(join(exec, 'cmd'), cmd + '\n')
    const exit = await readFile(join(exec, 'exit'), 'utf8')
    const output = await readFile(join(exec, 'output'), 'utf8')
    if (exit !== '125\n' || !FENCE_RACE.test(output) || tries === 5) return { output, exit }
  }
}
