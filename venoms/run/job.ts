/**
 * One job: a command in its own process group, its output appended to files on
 * the node's disk as it arrives, and reads that wait for more (a pipe that
 * keeps its history).
 */
import { EventEmitter } from 'node:events'
import { closeSync, openSync, writeSync } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { constants } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { HerdsError } from '../../tree/errno.js'
import type { JobRecord, JobStore, StreamName } from './record.js'
import { STREAMS } from './record.js'

export interface StartOptions {
  id: string
  cmd: string
  cwd: string
  env: Record<string, string>
  shell: string
  /** The folder that holds this job's output files. */
  dir: string
  store: JobStore
}

const EMPTY = new Uint8Array(0)

export class Job extends EventEmitter {
  record: JobRecord
  private readonly dir: string
  private readonly store: JobStore
  private readonly lengths: Record<StreamName, number>
  private readonly fds = new Map<StreamName, number>()
  private ended: boolean
  private readonly done: Promise<void>

  private constructor (record: JobRecord, dir: string, store: JobStore, lengths: Record<StreamName, number>) {
    super()
    this.setMaxListeners(0)
    this.record = record
    this.dir = dir
    this.store = store
    this.lengths = lengths
    this.ended = record.state !== 'running'
    this.done = this.ended ? Promise.resolve() : new Promise((resolve) => this.once('end', resolve))
  }

  get id (): string { return this.record.id }
  get running (): boolean { return !this.ended }

  /**
   * Starts a command and resolves once it has started (or failed to), so the
   * writer of `cmd` returns with the job already visible.
   */
  static async start (opts: StartOptions): Promise<Job> {
    const record: JobRecord = {
      id: opts.id, state: 'running', cmd: opts.cmd, cwd: opts.cwd, pid: null, exitCode: null, signal: null,
      startedAt: new Date().toISOString(), endedAt: null, durationMs: null, error: null,
    }
    const job = new Job(record, opts.dir, opts.store, { stdout: 0, stderr: 0, output: 0 })
    for (const stream of STREAMS) job.fds.set(stream, openSync(join(opts.dir, stream), 'a'))
    const child = execa(opts.shell, ['-c', opts.cmd], {
      cwd: opts.cwd,
      env: opts.env,
      extendEnv: false,
      detached: true, // its own process group, so a kill reaches the whole tree
      cleanup: false, // a job outlives the mount and the host; the node ends it on purpose
      buffer: false,
      reject: false,
      stdin: 'ignore',
      stripFinalNewline: false,
    })
    child.stdout?.on('data', (chunk: Buffer) => job.append('stdout', chunk))
    child.stderr?.on('data', (chunk: Buffer) => job.append('stderr', chunk))
    record.pid = child.pid ?? null
    await opts.store.put(record)
    void child.then((result) => {
      // No exit code and no signal: the process never ran (bad cwd, no shell).
      const neverRan = result.failed && result.exitCode === undefined && !result.signal
      return job.finish({
        exitCode: result.exitCode ?? null,
        signal: result.signal ?? null,
        error: neverRan ? ((result.cause as Error | undefined)?.message ?? result.shortMessage ?? 'failed to start') : null,
      })
    })
    if (record.pid === null) await job.done
    return job
  }

  /** A job from an earlier life of this node, read back from its record and files. */
  static async load (record: JobRecord, dir: string, store: JobStore): Promise<Job> {
    const lengths = { stdout: 0, stderr: 0, output: 0 }
    for (const stream of STREAMS) lengths[stream] = await stat(join(dir, stream)).then((s) => s.size, () => 0)
    if (record.state === 'running') {
      // The node restarted under it: we can no longer see its end, so say so.
      record = { ...record, state: 'lost', endedAt: new Date().toISOString(), error: 'the node restarted while this job ran' }
      await store.put(record)
    }
    return new Job(record, dir, store, lengths)
  }

  private append (stream: 'stdout' | 'stderr', chunk: Buffer): void {
    // Synchronous appends keep the on-disk order equal to arrival order, and the
    // data is on disk before any reader is told it exists.
    for (const name of [stream, 'output'] as const) {
      writeSync(this.fds.get(name)!, chunk)
      this.lengths[name] += chunk.length
    }
    this.emit('output')
  }

  private async finish (end: { exitCode: number | null, signal: string | null, error: string | null }): Promise<void> {
    const endedAt = new Date()
    const state = end.error ? 'failed_to_start' : end.signal ? 'killed' : 'exited'
    this.record = {
      ...this.record,
      state,
      exitCode: end.error ? 127 : end.exitCode,
      signal: end.signal,
      error: end.error,
      endedAt: endedAt.toISOString(),
      durationMs: endedAt.getTime() - Date.parse(this.record.startedAt!),
    }
    for (const fd of this.fds.values()) closeSync(fd)
    this.fds.clear()
    await this.store.put(this.record)
    this.ended = true
    this.emit('end')
  }

  /** The code `exit` reports: the exit status, or 128+N after signal N (as shells do). */
  exitStatus (): number {
    if (this.record.signal) return 128 + ((constants.signals as Record<string, number>)[this.record.signal] ?? 0)
    return this.record.exitCode ?? 255
  }

  /** Resolves when the job has ended; rejects with ECANCELED when the reader goes away. */
  async waitEnd (signal?: AbortSignal): Promise<void> {
    if (this.ended) return
    await this.waitFor('end', signal)
  }

  /**
   * Reads output at an offset; past the data so far it waits for more or for
   * the end, then returns an empty buffer (EOF).
   */
  async read (stream: StreamName, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    for (;;) {
      const available = this.lengths[stream] - offset
      if (available > 0) return readFileRange(join(this.dir, stream), offset, Math.min(length, available))
      if (this.ended) return EMPTY
      await this.waitFor('output', signal)
    }
  }

  /** Sends a signal to the job's whole process group. */
  kill (signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.ended || !this.record.pid) return
    try {
      process.kill(-this.record.pid, signal)
    } catch { /* already gone */ }
  }

  private waitFor (event: 'output' | 'end', signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new HerdsError('ECANCELED', 'cancelled'))
      const wake = (): void => {
        this.off(event, wake)
        this.off('end', wake)
        signal?.removeEventListener('abort', abort)
        resolve()
      }
      const abort = (): void => {
        this.off(event, wake)
        this.off('end', wake)
        reject(new HerdsError('ECANCELED', 'cancelled'))
      }
      this.on(event, wake)
      if (event !== 'end') this.on('end', wake)
      signal?.addEventListener('abort', abort, { once: true })
    })
  }
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
