/**
 * The TypeScript SDK: a thin layer of names over the file contract. Every
 * method is reads and writes of namespace files (see docs/sdk.md for the file
 * each one uses), over either transport: Herds.connect (WebSocket, no mount)
 * or Herds.open (a mounted directory).
 */
import { posix } from 'node:path'
import type { Duplex } from 'node:stream'
import { connectHost } from '../client.js'
import { HerdsError, toHerdsError } from '../../tree/errno.js'
import { checkName } from '../../tree/names.js'
import { forwardPort, type ForwardOptions, type Forwarding } from './forward.js'
import { fsTransport, treeTransport, type Appender, type FileStat, type Transport } from './transport.js'

export interface ConnectOptions {
  /** The host, e.g. ws://127.0.0.1:7077 or wss://herds.example:7077. */
  url: string
  /** A read, run or admin token (herds token show; or .herds/control/tokens/<name>/secret). */
  token: string
  /** Trust this certificate (PEM) for a wss:// host with a self-signed one. */
  ca?: Buffer
}

export interface RunOptions {
  /** Added to the node's (or sandbox's) environment for this job alone. */
  env?: Record<string, string>
  /** Seconds before the job is ended (SIGTERM, then SIGKILL); 0 or absent: the directory's setting. */
  timeout?: number
  /** Bytes for the job's standard input; it is closed after them (or at once when absent). */
  stdin?: string | Uint8Array
  /** Run in this sandbox of the node instead of the node's own workspace. */
  sandbox?: string
  /**
   * Run on a pseudo-terminal (jobs/<id>/tty): true for 24×80 xterm-256color,
   * or its size and TERM. Its stdout is then the terminal's bytes, stderr
   * joins it, and stdin takes keystrokes.
   */
  tty?: boolean | TtyOptions
}

/** A terminal job's terminal: what jobs/<id>/tty takes. */
export interface TtyOptions {
  rows?: number
  cols?: number
  /** TERM (xterm-256color). */
  term?: string
}

/**
 * What `shell()` runs when given no command: the node's login shell. SHELL
 * where the job's environment has it, else bash, else sh (a sandbox's
 * environment is rebuilt from an allowlist, and sh has no line editing).
 */
export const LOGIN_SHELL = 'shell=${SHELL:-$(command -v bash || echo /bin/sh)}; exec "$shell" -l'

export interface RunResult {
  /** The job's id in its exec/jobs/ folder. */
  id: string
  /** The exit code; null when a signal ended it. */
  exitCode: number | null
  /** As shells give it, from exec's `exit` file: the exit code, or 128+N after signal N. */
  exitStatus: number
  signal: string | null
  stdout: string
  stderr: string
  durationMs: number | null
  timedOut: boolean
  /** exited, killed, timed_out, failed_to_start, lost or expired (see docs/files.md). */
  state: string
}

export interface OutputChunk {
  stream: 'stdout' | 'stderr'
  data: Buffer
}

export interface NodeSummary {
  name: string
  online: boolean
  os: string
  arch: string
  hostname: string
  version: string
  connectedAt: string | null
  lastSeen: string
}

const readJson = async <T>(files: Transport, path: string): Promise<T> => JSON.parse((await files.read(path)).toString('utf8')) as T

/** A connection to a herd: the entry point of the SDK. */
export class Herds {
  /** The file operations underneath, for anything the SDK has no name for. */
  readonly files: Transport

  private constructor (files: Transport) {
    this.files = files
  }

  /** Connects to a host over WebSocket; no mount needed. */
  static async connect (opts: ConnectOptions): Promise<Herds> {
    const connection = await connectHost(opts.url, { token: opts.token, ca: opts.ca })
    return new Herds(treeTransport(connection.tree, () => connection.close()))
  }

  /** Uses a mounted namespace (herds up, herds mount) through plain fs calls. */
  static async open (mountpoint: string): Promise<Herds> {
    const files = fsTransport(mountpoint)
    const isHerds = await files.stat('/.herds/catalog').then((s) => s.directory, () => false)
    if (!isHerds) throw new HerdsError('ENOENT', `${mountpoint} is not a Herds mount (no .herds/catalog in it): start one with herds up or herds mount`)
    return new Herds(files)
  }

  /** Every node the host knows, online or not (.herds/catalog/nodes.json). */
  nodes (): Promise<NodeSummary[]> {
    return readJson(this.files, '/.herds/catalog/nodes.json')
  }

  /** A node by name; EINVAL for a name no node can have; whether it exists is known when it is used. */
  node (name: string): HerdsNode {
    checkName(name, 'node')
    return new HerdsNode(this.files, name)
  }

  /** The online node with the lowest load per CPU (status.json, info.json). */
  async pick (): Promise<HerdsNode> {
    const online = (await this.nodes()).filter((n) => n.online)
    if (online.length === 0) throw new HerdsError('EHOSTDOWN', 'no node is online')
    const scored = await Promise.all(online.map(async (n) => {
      const node = this.node(n.name)
      const [status, info] = await Promise.all([node.status(), node.info()]).catch(() => [undefined, undefined])
      const load = Array.isArray(status?.load) ? Number(status.load[0]) : Infinity
      return { node, score: load / Math.max(1, Number(info?.cpus) || 1) }
    }))
    return scored.sort((a, b) => a.score - b.score)[0].node
  }

  /** The host's default node (the one .herds/venoms/run runs on); EHOSTDOWN while none has connected. */
  async defaultNode (): Promise<HerdsNode> {
    const name = (await this.health()).defaultNode
    if (typeof name !== 'string') throw new HerdsError('EHOSTDOWN', 'no node has connected to the host yet (name one)')
    return this.node(name)
  }

  /** health.json: host version, uptime, nodes online, mounts connected, the default node. */
  health (): Promise<Record<string, unknown>> {
    return readJson(this.files, '/.herds/catalog/health.json')
  }

  /** Closes the connection (Herds.connect); nothing to do for a mount. */
  close (): void {
    this.files.close()
  }
}

/** One machine of the herd: /nodes/<name>/. */
export class HerdsNode {
  readonly name: string
  private readonly files: Transport

  constructor (files: Transport, name: string) {
    this.files = files
    this.name = name
  }

  get path (): string { return `/nodes/${this.name}` }

  info (): Promise<Record<string, unknown>> { return readJson(this.files, `${this.path}/info.json`) }
  status (): Promise<Record<string, unknown>> { return readJson(this.files, `${this.path}/status.json`) }

  /**
   * A TCP connection to `port` on the node (127.0.0.1 there; in a sandbox's
   * network view with `sandbox`), as a stream: ports/<port>/new, then data.
   */
  connect (port: number, opts: { sandbox?: string } = {}): Promise<Duplex> {
    return this.files.connect(this.portDir(port, opts.sandbox))
  }

  /**
   * Listens on a local port (a free one unless `localPort`) and carries each
   * connection to it to `port` on the node, as ssh -L does.
   */
  forward (port: number, opts: ForwardOptions & { sandbox?: string } = {}): Promise<Forwarding> {
    const dir = this.portDir(port, opts.sandbox)
    return forwardPort(() => this.files.connect(dir), opts)
  }

  /** ports/tcp/<port> of the node or of one of its sandboxes; EINVAL for a port no server can have. */
  private portDir (port: number, sandbox?: string): string {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new HerdsError('EINVAL', `a port is a whole number from 1 to 65535 (got ${String(port)})`)
    if (sandbox !== undefined) checkName(sandbox, 'sandbox')
    return sandbox === undefined ? `${this.path}/ports/tcp/${port}` : `${this.path}/sandboxes/${sandbox}/ports/tcp/${port}`
  }

  /** Starts a command in a job of its own (exec/new) and returns its handle. */
  async spawn (cmd: string, opts: Omit<RunOptions, 'stdin'> = {}): Promise<Job> {
    if (opts.sandbox !== undefined) checkName(opts.sandbox, 'sandbox')
    if (opts.env) envLines(opts.env) // refused before a job is taken, so none is left unstarted
    const exec = opts.sandbox ? `${this.path}/sandboxes/${opts.sandbox}/exec` : `${this.path}/exec`
    const id = (await this.files.read(`${exec}/new`)).toString('utf8').trim()
    const job = new Job(this.files, exec, id)
    await job.settle(opts)
    await job.start(cmd)
    return job
  }

  /**
   * An interactive shell (or `cmd`) on a terminal: a job with a tty, its
   * keystrokes through `openStdin()`, its screen from `stdout`, its size by
   * `resize()`. It runs on when this client goes away; `job(id)` finds it again.
   */
  shell (opts: Omit<RunOptions, 'stdin'> & { cmd?: string } = {}): Promise<Job> {
    const { cmd, ...rest } = opts
    return this.spawn(cmd ?? LOGIN_SHELL, { ...rest, tty: rest.tty || true })
  }

  /** A job of this node's exec/ (or of a sandbox's) by its id, started or not. */
  job (id: string, opts: Pick<RunOptions, 'sandbox'> = {}): Job {
    checkName(id, 'job')
    if (opts.sandbox !== undefined) checkName(opts.sandbox, 'sandbox')
    return new Job(this.files, opts.sandbox ? `${this.path}/sandboxes/${opts.sandbox}/exec` : `${this.path}/exec`, id)
  }

  /** Runs a command to its end and gives its output and exit status. */
  async run (cmd: string, opts: RunOptions = {}): Promise<RunResult> {
    return (await this.fed(cmd, opts)).wait()
  }

  /** Runs a command and yields its output as it comes, stdout and stderr apart. */
  async * stream (cmd: string, opts: RunOptions = {}): AsyncGenerator<OutputChunk, RunResult> {
    const job = await this.fed(cmd, opts)
    yield * job.output()
    return job.wait()
  }

  /** Spawns a job and gives it its whole stdin: `opts.stdin`, then end of file. */
  private async fed (cmd: string, opts: RunOptions): Promise<Job> {
    const job = await this.spawn(cmd, opts)
    if (opts.stdin !== undefined) await job.write(opts.stdin).catch(ignoreEnded)
    await job.end().catch(ignoreEnded)
    return job
  }

  /** A sandbox of this node, made if missing; `config` (config.json) is applied when given. */
  async sandbox (name: string, config?: Record<string, unknown>): Promise<Sandbox> {
    checkName(name, 'sandbox')
    const path = `${this.path}/sandboxes/${name}`
    await this.files.mkdir(path).catch(ignoreExisting)
    if (config) await this.files.write(`${path}/config.json`, JSON.stringify(config))
    return new Sandbox(this.files, this, name)
  }

  /** A volume of this node, made if missing. */
  async volume (name: string): Promise<Volume> {
    checkName(name, 'volume')
    const path = `${this.path}/volumes/${name}`
    await this.files.mkdir(path).catch(ignoreExisting)
    return new Volume(this.files, path)
  }
}

/** A running (or finished) job: exec/jobs/<id>/. */
export class Job {
  readonly id: string
  /** Its folder in the namespace: <exec>/jobs/<id>. */
  readonly dir: string
  private readonly files: Transport
  private readonly exec: string

  constructor (files: Transport, exec: string, id: string) {
    this.files = files
    this.exec = exec
    this.id = id
    this.dir = `${exec}/jobs/${id}`
  }

  /** Writes the job's own env, timeout and tty (before start). */
  async settle (opts: Pick<RunOptions, 'env' | 'timeout' | 'tty'>): Promise<void> {
    if (opts.env && Object.keys(opts.env).length > 0) await this.act('env', envLines(opts.env))
    if (opts.timeout !== undefined) await this.act('timeout', `${opts.timeout}\n`)
    if (opts.tty) await this.act('tty', JSON.stringify(opts.tty === true ? {} : opts.tty) + '\n')
  }

  /** Starts the job with `cmd` (spawn calls it). */
  async start (cmd: string): Promise<void> {
    await this.act('cmd', cmd.endsWith('\n') ? cmd : cmd + '\n')
  }

  /**
   * Appends to the job's standard input, in pieces the node takes; while the
   * job has not read what it was given (EAGAIN), waits and goes on, as a pipe
   * would block. EPIPE once the job has ended.
   */
  async write (data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data
    for (let offset = 0; offset < bytes.length; offset += STDIN_PIECE) {
      const piece = bytes.subarray(offset, offset + STDIN_PIECE)
      await whileBusy(() => this.act('stdin', piece))
    }
  }

  /**
   * Holds the job's stdin open for many small writes, one request each
   * (keystrokes); a write the job has not taken yet (EAGAIN) is sent again.
   */
  async openStdin (): Promise<Appender> {
    const stdin = await this.files.openAppend(`${this.dir}/stdin`)
    return {
      write: async (data) => {
        for (let offset = 0; offset < data.length; offset += STDIN_PIECE) {
          const piece = data.subarray(offset, offset + STDIN_PIECE)
          await whileBusy(() => stdin.write(piece))
        }
      },
      close: () => stdin.close(),
    }
  }

  /** Sets a terminal job's size (ctl "resize"); its programs are told (SIGWINCH) and redraw. */
  resize (rows: number, cols: number): Promise<void> {
    return this.act('ctl', `resize ${rows} ${cols}\n`)
  }

  /** Closes the job's standard input. */
  end (): Promise<void> {
    return this.act('ctl', 'eof\n')
  }

  /** Sends a signal to the job's whole process group (TERM by default; KILL follows after 3 s). */
  kill (signal = 'TERM'): Promise<void> {
    return this.act('ctl', `kill ${signal}\n`)
  }

  /**
   * Follows one output stream from byte `from` (0) until the job ends; a
   * promise `onChunk` returns is waited for before the next read.
   */
  follow (stream: 'stdout' | 'stderr' | 'output', onChunk: (chunk: Buffer) => unknown, opts: { from?: number, signal?: AbortSignal } = {}): Promise<void> {
    return this.files.stream(`${this.dir}/${stream}`, onChunk, opts.signal, opts.from)
  }

  /** The job's output as it comes, stdout and stderr apart; ends when the job does. */
  async * output (): AsyncGenerator<OutputChunk> {
    const queue: OutputChunk[] = []
    let wake: (() => void) | undefined
    let failure: unknown
    let open = 2
    for (const stream of ['stdout', 'stderr'] as const) {
      this.files.stream(`${this.dir}/${stream}`, (data) => { queue.push({ stream, data }); wake?.() })
        .catch((err) => { failure ??= err })
        .finally(() => { open--; wake?.() })
    }
    while (true) {
      if (queue.length > 0) { yield queue.shift()!; continue }
      if (failure) throw toHerdsError(failure)
      if (open === 0) return
      await new Promise<void>((resolve) => { wake = resolve })
      wake = undefined
    }
  }

  /** Waits for the end (exit), then gives the status and the whole output. */
  async wait (): Promise<RunResult> {
    const status = await this.status()
    const [stdout, stderr] = await Promise.all([this.files.read(`${this.dir}/stdout`), this.files.read(`${this.dir}/stderr`)])
    return { ...status, stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8') }
  }

  /** The job's status file as it is now (state, exitCode, signal...), without waiting for the end. */
  state (): Promise<Record<string, unknown>> {
    return readJson(this.files, `${this.dir}/status`)
  }

  /** Waits for the end (exit), then gives how it ended, without the output. */
  async status (): Promise<Omit<RunResult, 'stdout' | 'stderr'>> {
    const exit = Number((await this.files.read(`${this.dir}/exit`)).toString('utf8').trim())
    const status = await readJson<Record<string, unknown>>(this.files, `${this.dir}/status`)
    return {
      id: this.id,
      exitCode: status.exitCode as number | null,
      exitStatus: exit,
      signal: status.signal as string | null,
      durationMs: status.durationMs as number | null,
      timedOut: status.state === 'timed_out',
      state: status.state as string,
    }
  }

  /** Writes one of the job's files; a refusal carries the reason exec/error gives. */
  private async act (name: string, data: string | Uint8Array): Promise<void> {
    try {
      await this.files.write(`${this.dir}/${name}`, data)
    } catch (err) {
      const error = toHerdsError(err)
      // exec/error says "<time> jobs/<id>/<file>: <errno>: <reason>" when this refusal was the host's.
      const said = (await this.files.read(`${this.exec}/error`).catch(() => Buffer.alloc(0))).toString('utf8').trim()
      const reason = said.match(new RegExp(`^\\S+ jobs/${this.id}/${name}: ${error.code}: (.*)$`, 's'))?.[1]
      throw reason ? new HerdsError(error.code, reason) : error
    }
  }
}

/** A folder of files (a volume, a sandbox's workspace): paths are relative to it. */
export class Folder {
  /** Its namespace path. */
  readonly root: string
  protected readonly files: Transport

  constructor (files: Transport, root: string) {
    this.files = files
    this.root = root
  }

  /** A path inside; ".." cannot climb out. */
  protected at (path: string): string {
    const clean = posix.normalize('/' + path)
    return clean === '/' ? this.root : this.root + clean
  }

  readFile (path: string): Promise<Buffer> { return this.files.read(this.at(path)) }
  writeFile (path: string, data: string | Uint8Array): Promise<void> { return this.files.write(this.at(path), data) }
  readdir (path = '.'): Promise<string[]> { return this.files.list(this.at(path)) }
  stat (path: string): Promise<FileStat> { return this.files.stat(this.at(path)) }
  mkdir (path: string): Promise<void> { return this.files.mkdir(this.at(path)) }

  /** Removes a file, or a folder with `recursive`. */
  async rm (path: string, opts: { recursive?: boolean } = {}): Promise<void> {
    const full = this.at(path)
    if (full === this.root) throw new HerdsError('EINVAL', 'rm of the folder itself: use remove()')
    await removePath(this.files, full, opts.recursive ?? false)
  }
}

/** Removes a file, or a folder and (with `recursive`) everything in it, one name at a time. */
export async function removePath (files: Transport, path: string, recursive: boolean): Promise<void> {
  const info = await files.stat(path)
  if (!info.directory) return files.unlink(path)
  if (!recursive) throw new HerdsError('EISDIR', `${path} is a folder: pass { recursive: true }`)
  for (const name of await files.list(path)) await removePath(files, `${path}/${name}`, true)
  await files.rmdir(path)
}

/** A volume: nodes/<n>/volumes/<name>/. */
export class Volume extends Folder {
  /** Removes the volume; ENOTEMPTY unless it is empty (rm its files first). */
  remove (): Promise<void> {
    return this.files.rmdir(this.root)
  }
}

/** A sandbox: its workspace's files, its own exec/, its config and status. */
export class Sandbox extends Folder {
  readonly name: string
  readonly node: HerdsNode
  private readonly dir: string

  constructor (files: Transport, node: HerdsNode, name: string) {
    const dir = `${node.path}/sandboxes/${name}`
    super(files, `${dir}/workspace`)
    this.dir = dir
    this.node = node
    this.name = name
  }

  run (cmd: string, opts: Omit<RunOptions, 'sandbox'> = {}): Promise<RunResult> { return this.node.run(cmd, { ...opts, sandbox: this.name }) }
  stream (cmd: string, opts: Omit<RunOptions, 'sandbox'> = {}): AsyncGenerator<OutputChunk, RunResult> { return this.node.stream(cmd, { ...opts, sandbox: this.name }) }
  spawn (cmd: string, opts: Omit<RunOptions, 'sandbox' | 'stdin'> = {}): Promise<Job> { return this.node.spawn(cmd, { ...opts, sandbox: this.name }) }
  shell (opts: Omit<RunOptions, 'sandbox' | 'stdin'> & { cmd?: string } = {}): Promise<Job> { return this.node.shell({ ...opts, sandbox: this.name }) }
  connect (port: number): Promise<Duplex> { return this.node.connect(port, { sandbox: this.name }) }
  forward (port: number, opts: ForwardOptions = {}): Promise<Forwarding> { return this.node.forward(port, { ...opts, sandbox: this.name }) }

  status (): Promise<Record<string, unknown>> { return readJson(this.files, `${this.dir}/status.json`) }
  config (): Promise<Record<string, unknown>> { return readJson(this.files, `${this.dir}/config.json`) }

  /** Replaces config.json; EINVAL names the field that is wrong, and nothing changes. */
  async configure (config: Record<string, unknown>): Promise<void> {
    await this.files.write(`${this.dir}/config.json`, JSON.stringify(config))
  }

  /** Removes the sandbox: its jobs end, its files go. */
  remove (): Promise<void> {
    return this.files.rmdir(this.dir)
  }
}

/**
 * What one write to a job's stdin carries at most: one write(2) through FUSE
 * (128 KiB a request) and one request over the wire, so a refusal (EAGAIN)
 * refuses all of it, and sending it again duplicates nothing.
 */
const STDIN_PIECE = 64 * 1024

/** env lines for a job; names as shells take them, values on one line (a newline would smuggle in another name). */
function envLines (env: Record<string, string>): string {
  return Object.entries(env).map(([name, value]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new HerdsError('EINVAL', `env: ${JSON.stringify(name)} is not a variable name`)
    if (/[\n\0]/.test(value)) throw new HerdsError('EINVAL', `env: the value of ${name} has a newline or NUL byte`)
    return `${name}=${value}\n`
  }).join('')
}

/** Runs `write` until the job takes it: EAGAIN means it has not read what it was given yet, as a full pipe would block. */
async function whileBusy (write: () => Promise<void>): Promise<void> {
  for (let wait = 10; ; wait = Math.min(wait * 2, 500)) {
    try {
      return await write()
    } catch (err) {
      if (toHerdsError(err).code !== 'EAGAIN') throw err
      await new Promise((resolve) => setTimeout(resolve, wait))
    }
  }
}

const ignoreExisting = (err: unknown): void => { if (toHerdsError(err).code !== 'EEXIST') throw err }
/** Stdin of a job that already ended has no reader: not an error for run(). */
const ignoreEnded = (err: unknown): void => { if (toHerdsError(err).code !== 'EPIPE') throw err }
