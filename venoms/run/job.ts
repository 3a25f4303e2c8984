/**
 * One job: a command in its own process group, its output appended to files on
 * the node's disk as it arrives, and reads that wait for more (a pipe that
 * keeps its history). A job is made idle (by `new`, `mkdir` or a write to
 * `cmd`) and runs once.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { closeSync, constants as fsConstants, openSync, readdirSync, readFileSync, writeSync } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { constants } from 'node:os'
import { join } from 'node:path'
import type { Writable } from 'node:stream'
import { HerdsError, toHerdsError } from '../../tree/errno.js'
import { closeFdsHelper, fencedCommand, planLaunch } from './launch.js'
import { spawnTerminal, type Terminal, type TerminalSize } from './pty.js'
import { ENDED_STATES, STREAMS, type JobRecord, type JobStore, type StreamName, type Tty } from './record.js'

export interface RunOptions {
  cmd: string
  cwd: string
  env: Record<string, string>
  shell: string
  /** A command that runs the shell inside a fence (bwrap …), or none. */
  wrap?: string[]
  /** Seconds before the job is ended as timed_out; 0: no limit. */
  timeout: number
}

export interface JobLimits {
  /** Bytes of stdout+stderr kept; past it output is dropped and a line says so. */
  maxOutputBytes: number
  /** Bytes written to stdin that the job has not read yet, at most. */
  maxPendingStdin: number
  /** Milliseconds between SIGTERM and SIGKILL. */
  killGraceMs: number
  /** Terminal jobs running on the node at once, at most. */
  maxTerminals?: number
}

/** A kill's search of the session is not done again within this long: a flood of kill lines costs one search, not thousands. */
const SESSION_SCAN_MS = 250

const EMPTY = new Uint8Array(0)

export class Job extends EventEmitter {
  record: JobRecord
  /** What jobs/<id>/env, timeout and tty set for this job alone, before it starts (kept in memory). */
  preset: { env: Record<string, string>, timeout?: number, tty?: Tty } = { env: {} }
  private readonly dir: string
  private readonly store: JobStore
  private readonly limits: JobLimits
  private readonly lengths: Record<StreamName, number> = { stdout: 0, stderr: 0, output: 0 }
  private readonly fds = new Map<StreamName, number>()
  private stdin: Writable | undefined
  /** The pseudo-terminal of a terminal job, while it runs. */
  private terminal: Terminal | undefined
  private pipes: Array<{ destroy (): void }> = []
  private timedOut = false
  /** Its output was cut short: the node died while it ran (lost in an earlier life). */
  private cut = false
  private timers: NodeJS.Timeout[] = []
  /** The SIGKILL after a grace is due: later kills do not queue another. */
  private escalating = false
  private scannedAt = 0

  constructor (record: JobRecord, dir: string, store: JobStore, limits: JobLimits) {
    super()
    this.setMaxListeners(0)
    this.record = record
    this.dir = dir
    this.store = store
    this.limits = limits
  }

  get id (): string { return this.record.id }
  get ended (): boolean { return ENDED_STATES.includes(this.record.state) }
  get running (): boolean { return this.record.state === 'running' }

  /** A job from an earlier life of this node, read back from its record and files. */
  static async load (record: JobRecord, dir: string, store: JobStore, limits: JobLimits): Promise<Job> {
    if (record.state === 'running') {
      // The node restarted under it: we can no longer see its end, so say so.
      record = { ...record, state: 'lost', endedAt: new Date().toISOString(), error: 'the node restarted while this job ran' }
      await store.put(record)
    }
    const job = new Job(record, dir, store, limits)
    job.cut = record.state === 'lost'
    for (const stream of STREAMS) job.lengths[stream] = await stat(join(dir, stream)).then((s) => s.size, () => 0)
    return job
  }

  /** Bytes of each output stream so far. */
  bytes (): Record<StreamName, number> {
    return { ...this.lengths }
  }

  /** Refuses with EBUSY, and why, unless the job is still waiting for its cmd. */
  checkIdle (): void {
    if (this.record.state === 'expired') throw new HerdsError('EBUSY', `${this.record.error ?? `job ${this.id} expired`}; take a new job (cat new)`)
    if (this.record.state !== 'idle') throw new HerdsError('EBUSY', `job ${this.id} has already run; take a new job (cat new)`)
  }

  /**
   * Ends a job that never got its cmd: expired, with why in `error`, and its
   * waiting readers woken (they then fail with ETIMEDOUT). Nothing if it has started.
   */
  async expire (reason: string): Promise<void> {
    if (this.record.state !== 'idle') return
    this.record = { ...this.record, state: 'expired', endedAt: new Date().toISOString(), error: reason }
    await this.store.put(this.record).catch(() => { /* the disk is full: the record in memory says it */ })
    this.emit('end')
  }

  /**
   * Starts the command and resolves once it has started, so the writer of
   * `cmd` returns with the job already visible. A job that cannot start ends
   * as failed_to_start and this rejects with why. Runs once: EBUSY after.
   */
  async run (opts: RunOptions): Promise<void> {
    this.checkIdle()
    this.record = { ...this.record, cmd: opts.cmd, cwd: opts.cwd, timeout: opts.timeout }
    if (this.preset.tty) return this.runOnTerminal(opts, this.preset.tty)
    let child: ChildProcess
    try {
      this.openOutput()
      // A fence's own programs never see the job's PATH or loader variables (fencedCommand).
      const { argv, env } = opts.wrap?.length
        ? fencedCommand(opts.wrap, opts.shell, opts.cmd, opts.env, process.env.PATH)
        : { argv: [opts.shell, '-c', opts.cmd], env: opts.env }
      const launch = planLaunch(argv, env.PATH)
      child = spawn(launch.file, launch.args, {
        cwd: opts.cwd,
        env,
        detached: true, // its own process group, so a kill reaches the whole tree
        stdio: launch.stdio,
      })
    } catch (err) {
      throw await this.failStart(err) // an unopenable output file, no shell, an argument spawn refuses
    }
    this.record = { ...this.record, state: 'running', startedAt: new Date().toISOString() }
    let spawnError: Error | undefined
    const ended = new Promise<void>((resolve) => {
      child.once('error', (err) => { spawnError ??= err })
      // After the exit and the end of its output: no chunk arrives after the end.
      child.once('close', (code, signal) => {
        resolve(this.finish(spawnError && child.pid === undefined
          ? { exitCode: null, signal: null, error: spawnError.message }
          : { exitCode: code, signal, error: null }))
      })
    }).catch((err: unknown) => {
      // Recording the end failed (a full disk): the job has ended all the same.
      this.record = { ...this.record, state: 'lost', error: `could not record the end: ${(err as Error).message}` }
      this.emit('end')
    })
    this.stdin = child.stdin ?? undefined
    this.stdin?.on('error', () => { /* the job closed its stdin; writes now fail with EPIPE */ })
    this.pipes = [child.stdout, child.stderr].filter((p) => p !== null)
    child.stdout?.on('data', (chunk: Buffer) => this.append('stdout', chunk))
    child.stderr?.on('data', (chunk: Buffer) => this.append('stderr', chunk))
    if (child.pid === undefined) {
      // It never ran (no working directory, say): said by the 'error' that comes next.
      await ended
      throw new HerdsError(toHerdsError(spawnError).code, `job ${this.id} failed to start: ${this.record.error ?? 'unknown reason'}`)
    }
    this.record.pid = child.pid
    await this.started(opts.timeout)
  }

  /** Records the start, tells the runner, and starts the clock of the job's timeout. */
  private async started (timeout: number): Promise<void> {
    await this.store.put(this.record)
    this.emit('start')
    if (timeout > 0) {
      this.timers.push(setTimeout(() => { this.timedOut = true; this.kill('SIGTERM') }, timeout * 1000))
    }
  }

  /**
   * Starts the command on a pseudo-terminal of its own: its bytes go to
   * stdout (and output), stderr stays empty, as on a terminal. It starts
   * through close-fds like every job; without that helper it is refused,
   * since a terminal cannot cover the node's descriptors with /dev/null.
   */
  private async runOnTerminal (opts: RunOptions, tty: Tty): Promise<void> {
    let terminal: Terminal
    try {
      this.openOutput()
      const helper = closeFdsHelper()
      if (!helper) throw new HerdsError('ENOSYS', 'terminals need venoms/run/build/close-fds (npm run setup builds it): without it a terminal job would inherit the node\'s open files')
      const jobEnv: Record<string, string> = { ...opts.env, TERM: tty.term }
      const { argv, env } = opts.wrap?.length
        ? fencedCommand(opts.wrap, opts.shell, opts.cmd, jobEnv, process.env.PATH)
        : { argv: [opts.shell, '-c', opts.cmd], env: jobEnv }
      const launch = planLaunch(argv, env.PATH, helper)
      terminal = spawnTerminal({ file: launch.file, args: launch.args, cwd: opts.cwd, env, term: tty.term, rows: tty.rows, cols: tty.cols }, this.limits.maxTerminals)
    } catch (err) {
      throw await this.failStart(err)
    }
    this.terminal = terminal
    this.record = { ...this.record, state: 'running', startedAt: new Date().toISOString(), pid: terminal.pid, tty }
    terminal.onData((chunk) => this.append('stdout', chunk))
    terminal.onExit(({ exitCode, signal }) => {
      this.terminal = undefined
      hangUpSession(terminal.pid, this.limits.killGraceMs)
      const name = signal ? Object.entries(constants.signals).find(([, n]) => n === signal)?.[0] ?? `SIG${signal}` : null
      this.finish({ exitCode: name ? null : exitCode, signal: name, error: null }).catch((err: unknown) => {
        this.record = { ...this.record, state: 'lost', error: `could not record the end: ${(err as Error).message}` }
        this.emit('end')
      })
    })
    await this.started(opts.timeout)
  }

  /** Opens the three output files; on failure none stays open. */
  private openOutput (): void {
    // Never through a link: whatever is in this folder, the node writes only its own files.
    const flags = fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT | fsConstants.O_NOFOLLOW
    try {
      for (const stream of STREAMS) this.fds.set(stream, openSync(join(this.dir, stream), flags, 0o644))
    } catch (err) {
      this.closeOutput()
      throw new HerdsError(toHerdsError(err).code, `its output files could not be made in ${this.dir}: ${(err as Error).message}`)
    }
  }

  private closeOutput (): void {
    for (const fd of this.fds.values()) closeSync(fd)
    this.fds.clear()
  }

  /**
   * Ends a job that could not start: failed_to_start with the reason, readers
   * of `exit` and the output woken, and the error to give the writer of `cmd`.
   */
  private async failStart (err: unknown): Promise<HerdsError> {
    this.closeOutput()
    // spawn's own refusals quote the value they refuse, and status and error are for read tokens too.
    const reason = err instanceof TypeError ? new HerdsError('EINVAL', 'a value in its environment holds a NUL byte') : toHerdsError(err)
    const now = new Date().toISOString()
    this.record = { ...this.record, state: 'failed_to_start', pid: null, exitCode: 127, startedAt: now, endedAt: now, durationMs: 0, error: reason.message }
    await this.store.put(this.record).catch(() => { /* the disk is full too: the record in memory says it */ })
    this.emit('end')
    return new HerdsError(reason.code, `job ${this.id} failed to start: ${reason.message}`)
  }

  private append (stream: 'stdout' | 'stderr', chunk: Buffer): void {
    try {
      this.keep(stream, chunk)
    } catch (err) {
      // The disk is full (or gone): keep the job running, drop its output, and say so.
      this.record.truncated = true
      this.record.error = `output could not be written: ${(err as Error).message}`
    }
    this.emit('output')
  }

  /** Keeps a chunk of output, up to the cap; past it the rest is drained and dropped, so the job never blocks on a full pipe. */
  private keep (stream: 'stdout' | 'stderr', chunk: Buffer): void {
    if (this.record.truncated) return
    const room = this.limits.maxOutputBytes - (this.lengths.stdout + this.lengths.stderr)
    if (chunk.length > room) {
      this.writeStream(stream, chunk.subarray(0, Math.max(0, room)))
      const note = Buffer.from(`\n[herds: output truncated: this job wrote more than ${this.limits.maxOutputBytes} bytes]\n`)
      for (const name of ['stdout', 'stderr'] as const) this.writeStream(name, note)
      this.record.truncated = true
      this.store.put(this.record).catch(() => {})
    } else {
      this.writeStream(stream, chunk)
    }
  }

  /** Appends to a stream and to `output`. Synchronous: disk order is arrival order, and data is on disk before a reader hears of it. */
  private writeStream (stream: 'stdout' | 'stderr', chunk: Buffer): void {
    if (chunk.length === 0) return
    for (const name of [stream, 'output'] as const) {
      writeSync(this.fds.get(name)!, chunk)
      this.lengths[name] += chunk.length
    }
  }

  private async finish (end: { exitCode: number | null, signal: string | null, error: string | null }): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer)
    const endedAt = new Date()
    const state = end.error ? 'failed_to_start' : this.timedOut ? 'timed_out' : end.signal ? 'killed' : 'exited'
    this.closeOutput()
    this.record = {
      ...this.record,
      state,
      exitCode: end.error ? 127 : end.exitCode,
      signal: end.signal,
      error: end.error ?? this.record.error, // keep why output was dropped, if it was
      endedAt: endedAt.toISOString(),
      durationMs: endedAt.getTime() - Date.parse(this.record.startedAt!),
    }
    await this.store.put(this.record)
    this.emit('end')
  }

  /** The code `exit` reports: the exit status, or 128+N after signal N (as shells do). */
  exitStatus (): number {
    if (this.record.signal) return 128 + ((constants.signals as Record<string, number>)[this.record.signal] ?? 0)
    return this.record.exitCode ?? 255
  }

  /**
   * Waits for the end, then gives the exit status; an expired job never ran,
   * so it has none: ETIMEDOUT, with why.
   */
  async waitExit (signal?: AbortSignal): Promise<number> {
    await this.waitEnd(signal)
    this.checkNotExpired()
    return this.exitStatus()
  }

  /** ETIMEDOUT for a job that expired: no output, no exit code, ever. */
  private checkNotExpired (): void {
    if (this.record.state === 'expired') throw new HerdsError('ETIMEDOUT', this.record.error ?? `job ${this.id} expired before it got a cmd`)
  }

  /** Resolves when the job has ended; rejects with ECANCELED when the reader goes away. */
  async waitEnd (signal?: AbortSignal): Promise<void> {
    while (!this.ended) await this.waitFor('end', signal)
  }

  /**
   * Reads output at an offset; past the data so far it waits for more or for
   * the end, then returns an empty buffer (EOF), or EIO for output cut short by
   * a crash of the node, so a reader does not take it for the whole; ETIMEDOUT
   * for a job that expired without a cmd, which has no output to give.
   */
  async read (stream: StreamName, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    for (;;) {
      this.checkNotExpired()
      const available = this.lengths[stream] - offset
      if (available > 0) return readFileRange(join(this.dir, stream), offset, Math.min(length, available))
      if (this.cut) throw new HerdsError('EIO', `job ${this.id} was lost: the node stopped while it ran, so its ${stream} ends here, cut short (see status)`)
      if (this.ended) return EMPTY
      await this.waitFor('output', signal)
    }
  }

  /** Appends bytes to the job's stdin. */
  async writeStdin (data: Uint8Array): Promise<number> {
    if (this.running && this.terminal) {
      this.typeAtTerminal(this.terminal, Buffer.from(data))
      return data.length
    }
    if (!this.running || !this.stdin) throw new HerdsError('EPIPE', `job ${this.id} is not running; stdin takes bytes only while it runs`)
    if (this.stdin.writableEnded || this.stdin.destroyed) throw new HerdsError('EPIPE', `the stdin of job ${this.id} is closed`)
    if (this.stdin.writableLength + data.length > this.limits.maxPendingStdin) {
      throw new HerdsError('EAGAIN', `job ${this.id} has not read the ${this.stdin.writableLength} bytes already written to its stdin`)
    }
    this.stdin.write(Buffer.from(data))
    return data.length
  }

  /** Keystrokes within the bound on what the terminal has not taken (EAGAIN past it). */
  private typeAtTerminal (terminal: Terminal, data: Buffer): void {
    if (terminal.pending() + data.length > this.limits.maxPendingStdin) {
      throw new HerdsError('EAGAIN', `job ${this.id} has not read the ${terminal.pending()} bytes already typed at its terminal`)
    }
    terminal.write(data)
  }

  /** Closes the job's stdin (ctl "eof"); on a terminal, types its end-of-file character (Ctrl-D), as a keyboard would. */
  closeStdin (): void {
    if (this.running && this.terminal) return this.typeAtTerminal(this.terminal, Buffer.from([0x04]))
    if (!this.running || !this.stdin) throw new HerdsError('EPIPE', `job ${this.id} is not running`)
    this.stdin.end()
  }

  /**
   * Sets a terminal job's size (ctl "resize ROWS COLS"). Its programs hear of
   * it by SIGWINCH and redraw; the kernel sends none for the size it has, so
   * the same size is set by way of another, and a client that attaches again
   * gets the screen redrawn that way.
   */
  resize (size: TerminalSize): void {
    if (!this.record.tty) throw new HerdsError('EINVAL', `job ${this.id} has no terminal (write its tty before its cmd)`)
    if (!this.terminal) return // it has ended: nothing to redraw
    const { rows, cols } = this.record.tty
    if (rows === size.rows && cols === size.cols) this.terminal.resize({ rows, cols: cols > 1 ? cols - 1 : cols + 1 })
    this.terminal.resize(size)
    this.record = { ...this.record, tty: { ...this.record.tty, ...size } }
    this.store.put(this.record).catch(() => { /* the disk is full: the record in memory says it */ })
  }

  /**
   * Sends a signal to the job's whole process group; unless it is SIGKILL, a
   * job still running after the grace gets SIGKILL.
   */
  kill (signal: NodeJS.Signals = 'SIGTERM'): void {
    if (!this.running || !this.record.pid) return
    const pgid = this.record.pid
    const onTerminal = this.terminal !== undefined
    const send = (sig: NodeJS.Signals, scan: boolean): void => {
      try { process.kill(-pgid, sig) } catch { /* already gone */ }
      // An interactive shell puts each command in a process group of its own: reach its whole session.
      if (onTerminal && scan) signalSession(pgid, sig)
    }
    const now = Date.now()
    send(signal, now - this.scannedAt >= SESSION_SCAN_MS)
    if (now - this.scannedAt >= SESSION_SCAN_MS) this.scannedAt = now
    if (this.escalating) return
    const forceEnd = (): void => {
      // Killed, yet still "running": a process outside the group (setsid) holds
      // its output open. Stop waiting for it, so the job (and a stopping node) can end.
      if (!this.running) return
      for (const pipe of this.pipes) pipe.destroy()
      this.terminal?.close()
    }
    this.escalating = true
    if (signal === 'SIGKILL') {
      this.timers.push(setTimeout(forceEnd, 1000))
    } else {
      this.timers.push(setTimeout(() => {
        if (!this.running) return
        send('SIGKILL', true)
        this.timers.push(setTimeout(forceEnd, 1000))
      }, this.limits.killGraceMs))
    }
  }

  private waitFor (event: 'output' | 'end', signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new HerdsError('ECANCELED', 'cancelled'))
      const events = event === 'end' ? ['end'] : ['output', 'end']
      const wake = (): void => { done(); resolve() }
      const abort = (): void => { done(); reject(new HerdsError('ECANCELED', 'cancelled')) }
      const done = (): void => {
        for (const e of events) this.off(e, wake)
        signal?.removeEventListener('abort', abort)
      }
      for (const e of events) this.on(e, wake)
      signal?.addEventListener('abort', abort, { once: true })
    })
  }
}

/** Sends `signal` to every process of the session `sid`. */
function signalSession (sid: number, signal: NodeJS.Signals): void {
  for (const pid of sessionOf(sid)) { try { process.kill(pid, signal) } catch { /* gone */ } }
}

/**
 * A terminal job's shell has exited: what it left in its session (an
 * interactive shell's background jobs, which the kernel's hang-up does not
 * reach) gets SIGHUP, and SIGKILL after the grace, so nothing outlives the job
 * where kill can no longer reach it. setsid leaves the session, on purpose.
 */
function hangUpSession (sid: number, graceMs: number): void {
  if (sessionOf(sid).length === 0) return
  signalSession(sid, 'SIGHUP')
  setTimeout(() => signalSession(sid, 'SIGKILL'), graceMs).unref()
}

/**
 * The processes of the session `sid` (a terminal job's shell leads one), from
 * /proc on Linux; none elsewhere, where a kill reaches the shell's own
 * process group and the hang-up that follows its end.
 */
function sessionOf (sid: number): number[] {
  if (process.platform !== 'linux') return []
  const found: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      // Fields after the command's name: state, ppid, pgrp, session.
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]) === sid) found.push(Number(name))
    } catch { /* ended meanwhile */ }
  }
  return found
}

/** Reads `length` bytes at `offset` of a file. */
async function readFileRange (path: string, offset: number, length: number): Promise<Uint8Array> {
  const fh = await open(path, 'r')
  try {
    const buf = Buffer.allocUnsafe(length)
    const { bytesRead } = await fh.read(buf, 0, length, offset)
    return buf.subarray(0, bytesRead)
  } finally {
    await fh.close()
  }
}
