/**
 * A runner: the jobs of one exec/ directory, its default slot (the top-level
 * files), its settings (`env`, `timeout`) and its last refusal (`error`). Jobs
 * are recorded in the store, their output kept under `outputDir/<id>/`, and
 * old ones pruned by count and age.
 */
import { mkdirSync } from 'node:fs'
import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { MAX_TERMINALS } from './pty.js'
import { HerdsError } from '../../tree/errno.js'
import { Job } from './job.js'
import type { JobRecord, JobStore, Settings } from './record.js'

/** Defaults for what a runner keeps and allows; docs/files.md states them. */
export const RUN_DEFAULTS = {
  /** Ended jobs kept at most, newest first. */
  keepJobs: 1000,
  /** Ended jobs older than this are removed. */
  keepMs: 7 * 24 * 3600 * 1000,
  /** A job made by `new` or `mkdir` that gets no cmd within this ends as expired. */
  expireIdleMs: 10 * 60 * 1000,
  /** Jobs made by `new` or `mkdir` and waiting for their cmd, at most, in one exec/ (EAGAIN past it). */
  maxIdleJobs: 100,
  maxOutputBytes: 256 * 1024 * 1024,
  maxPendingStdin: 1024 * 1024,
  killGraceMs: 3_000,
  /** Terminal jobs running at once on the whole node, at most (EAGAIN past it): each holds one of the machine's ptys. */
  maxTerminals: MAX_TERMINALS,
}

export interface RunnerOptions {
  /** The working directory of the jobs started here. */
  cwd: string
  /** The environment of the jobs started here, before the user's `env` (asked anew for every job). */
  env: Record<string, string> | (() => Record<string, string>)
  /** Asked before every job starts; throws to refuse (a stopped sandbox). */
  gate?: () => void
  /** The shell that runs a command line: `<shell> -c <cmd>`. */
  shell: string
  /** The fence (and limits) to run each job in, asked anew for every job, by its id (a sandbox's config may change). */
  wrap?: (id: string) => string[]
  /** Where job output lives, one folder a job. */
  outputDir: string
  store: JobStore
  limits?: Partial<typeof RUN_DEFAULTS>
  /** Told of every change of a job's record (start, end), for the host's index. */
  onRecord?: (record: JobRecord) => void
}

export class Runner {
  private readonly opts: RunnerOptions
  private readonly limits: typeof RUN_DEFAULTS
  private readonly jobs = new Map<string, Job>()
  settings: Settings
  /** The last refusal in this directory, in words (the `error` file). */
  lastError = ''
  /** The job the top-level files show. */
  current: Job | undefined
  /** A command is being started in the slot; it counts as busy from the first moment. */
  private starting = false
  /** The last prune pass, so passes never overlap. */
  private pruning: Promise<void> = Promise.resolve()
  /** The expiry timer of each job waiting for its cmd. */
  private readonly expiries = new Map<string, NodeJS.Timeout>()
  /** Allocations under way (between the check of the bound and the job being tracked). */
  private allocating = 0

  constructor (opts: RunnerOptions) {
    this.opts = opts
    this.limits = { ...RUN_DEFAULTS, ...opts.limits }
    this.settings = opts.store.loadSettings()
  }

  /** Loads the jobs of earlier lives of this node; running ones are marked lost. */
  async load (): Promise<void> {
    makeDirs(this.opts.outputDir)
    const onDisk = new Set(await readdir(this.opts.outputDir))
    const records = this.opts.store.list().filter((r) => onDisk.has(r.id))
    records.sort((a, b) => a.createdAt.localeCompare(b.createdAt))
    for (const record of records) {
      const job = await Job.load(record, join(this.opts.outputDir, record.id), this.opts.store, this.limits)
      // One made before the restart that is past its time expires now, before anyone is told of
      // changes (the node's connection is not up yet; it reports every record when it is); the others keep their clock.
      if (record.state === 'idle') await this.scheduleExpiry(job)
      this.track(job)
      if (record.startedAt) this.current = job
    }
    await this.prune()
  }

  get (id: string): Job | undefined {
    return this.jobs.get(id)
  }

  ids (): string[] {
    return [...this.jobs.keys()]
  }

  all (): Job[] {
    return [...this.jobs.values()]
  }

  /**
   * Makes an idle job, named by the client (mkdir) or numbered (new), that
   * expires unless it gets a cmd in time; EAGAIN while too many wait for one.
   */
  async allocate (name?: string): Promise<Job> {
    const waiting = this.all().filter((job) => job.record.state === 'idle' && job !== this.current).length + this.allocating
    if (waiting >= this.limits.maxIdleJobs) {
      throw new HerdsError('EAGAIN', `${waiting} jobs made here are waiting for a cmd, the most allowed: give them their cmd, or wait for them to expire (${seconds(this.limits.expireIdleMs)} s after they were made)`)
    }
    this.allocating++
    try {
      return await this.make(name)
    } finally {
      this.allocating--
    }
  }

  /** Makes an idle job, records it, and starts its clock (a slot job that cannot start expires too). */
  private async make (name?: string): Promise<Job> {
    if (name !== undefined && (this.jobs.has(name) || this.opts.store.get(name))) {
      throw new HerdsError('EEXIST', `job ${name} exists already`)
    }
    const id = name ?? await this.opts.store.nextId()
    const dir = join(this.opts.outputDir, id)
    makeDirs(dir)
    const now = new Date().toISOString()
    const job = new Job({
      id, state: 'idle', cmd: '', cwd: this.opts.cwd, pid: null, exitCode: null, signal: null, createdAt: now,
      startedAt: null, endedAt: null, durationMs: null, timeout: 0, truncated: false, error: null, tty: null,
    }, dir, this.opts.store, this.limits)
    await this.opts.store.put(job.record)
    this.track(job)
    void this.scheduleExpiry(job)
    return job
  }

  /** Runs a command in a job with this directory's settings. */
  async run (job: Job, cmd: string): Promise<void> {
    this.opts.gate?.()
    makeDirs(this.opts.cwd)
    const base = typeof this.opts.env === 'function' ? this.opts.env() : this.opts.env
    await job.run({
      cmd,
      cwd: this.opts.cwd,
      env: { ...base, ...this.settings.env, ...job.preset.env },
      shell: this.opts.shell,
      wrap: this.opts.wrap?.(job.id),
      timeout: job.preset.timeout ?? this.settings.timeout,
    })
  }

  /** Refuses with EBUSY while the default slot's job runs. */
  checkSlotFree (): void {
    this.opts.gate?.()
    if (this.starting) throw new HerdsError('EBUSY', 'a job is starting here; wait for it (cat exit) or take your own job (cat new)')
    if (this.current?.running) {
      throw new HerdsError('EBUSY', `job ${this.current.id} is still running here; wait for it (cat exit) or take your own job (cat new)`)
    }
  }

  /** Starts a command in the default slot; refused with EBUSY while its job runs. */
  async runInSlot (cmd: string): Promise<Job> {
    this.checkSlotFree()
    this.starting = true
    try {
      const job = await this.make() // runs at once: not counted as waiting
      this.current = job
      await this.run(job, cmd)
      return job
    } finally {
      this.starting = false
    }
  }

  async saveSettings (settings: Settings): Promise<void> {
    this.settings = settings
    await this.opts.store.saveSettings(settings)
  }

  /** Notes a refusal for the `error` file. */
  noteError (path: string, err: HerdsError): void {
    this.lastError = `${new Date().toISOString()} ${path}: ${err.code}: ${err.message}\n`
  }

  private track (job: Job): void {
    this.jobs.set(job.id, job)
    const report = (): void => this.opts.onRecord?.(job.record)
    job.on('start', () => { this.clearExpiry(job.id); report() })
    job.on('end', () => { this.clearExpiry(job.id); report(); void this.prune() })
  }

  /**
   * Ends `job` as expired once its time to get a cmd is up: at once when it is
   * up already (a job from before a restart), else on a timer.
   */
  private async scheduleExpiry (job: Job): Promise<void> {
    const left = Date.parse(job.record.createdAt) + this.limits.expireIdleMs - Date.now()
    if (!(left > 0)) {
      const reason = `job ${job.id} was allocated at ${job.record.createdAt} and given no cmd within ${seconds(this.limits.expireIdleMs)} s, so it expired`
      return job.expire(reason)
    }
    // setTimeout fires at once past 2^31-1 ms: a longer wait is taken in steps.
    const timer = setTimeout(() => { void this.scheduleExpiry(job) }, Math.min(left, 2 ** 31 - 1))
    timer.unref()
    this.clearExpiry(job.id)
    this.expiries.set(job.id, timer)
  }

  private clearExpiry (id: string): void {
    clearTimeout(this.expiries.get(id))
    this.expiries.delete(id)
  }

  /**
   * Removes ended jobs (expired ones among them) past the count or age limit.
   * One pass at a time: a caller's await also waits for the passes before it
   * (each job's end starts one), so what it removes is gone when it returns.
   */
  prune (): Promise<void> {
    this.pruning = this.pruning.then(() => this.prunePass(), () => this.prunePass())
    return this.pruning
  }

  private async prunePass (): Promise<void> {
    const now = Date.now()
    const ended = this.all().filter((job) => job.ended && job !== this.current)
      .sort((a, b) => (b.record.endedAt ?? '').localeCompare(a.record.endedAt ?? ''))
    const doomed = ended.filter((job, i) => i >= this.limits.keepJobs || now - Date.parse(job.record.endedAt ?? job.record.createdAt) > this.limits.keepMs)
    for (const job of doomed) {
      this.jobs.delete(job.id)
      await this.opts.store.remove(job.id)
      await rm(join(this.opts.outputDir, job.id), { recursive: true, force: true })
    }
  }

  /** Removes every record of this runner from the store (its directory is going away). */
  async forget (): Promise<void> {
    for (const id of [...this.expiries.keys()]) this.clearExpiry(id) // an expiry now would record into the cleared store
    await this.opts.store.clear()
    this.jobs.clear()
    this.current = undefined
  }

  /** Ends every running job (the node is stopping on purpose): SIGTERM, then SIGKILL after the grace. */
  async stopAll (): Promise<void> {
    const running = this.all().filter((job) => job.running)
    for (const job of running) job.kill('SIGTERM')
    await Promise.all(running.map((job) => job.waitEnd()))
  }
}

/** Milliseconds as seconds, for messages. */
function seconds (ms: number): number {
  return Math.round(ms / 100) / 10
}

/**
 * mkdir -p. Synchronous because the promise form reports a disk out of inodes
 * as ENOENT, not ENOSPC (Node 20), and the user must hear the real reason.
 */
function makeDirs (dir: string): void {
  mkdirSync(dir, { recursive: true })
}
