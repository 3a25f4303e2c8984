/**
 * A runner: the jobs of one exec/ directory and its default slot (the
 * top-level files). Jobs are recorded in the store and their output kept under
 * `outputDir/<id>/`.
 */
import { mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { HerdsError } from '../../tree/errno.js'
import { Job } from './job.js'
import type { JobStore } from './record.js'

/** How long a job has between SIGTERM and SIGKILL. */
export const KILL_GRACE_MS = 3_000

export interface RunnerOptions {
  /** The working directory of the jobs started here. */
  cwd: string
  /** The environment of the jobs started here. */
  env: Record<string, string>
  /** The shell that runs a command line: `<shell> -c <cmd>`. */
  shell: string
  /** Where job output lives, one folder a job. */
  outputDir: string
  store: JobStore
}

export class Runner {
  private readonly opts: RunnerOptions
  private readonly jobs = new Map<string, Job>()
  /** The job the top-level files show. */
  current: Job | undefined

  constructor (opts: RunnerOptions) {
    this.opts = opts
  }

  /** Loads the jobs of earlier lives of this node; running ones are marked lost. */
  async load (): Promise<void> {
    await mkdir(this.opts.outputDir, { recursive: true })
    const onDisk = new Set(await readdir(this.opts.outputDir))
    const records = this.opts.store.list().filter((r) => onDisk.has(r.id))
    records.sort((a, b) => (a.startedAt ?? '').localeCompare(b.startedAt ?? ''))
    for (const record of records) {
      const job = await Job.load(record, join(this.opts.outputDir, record.id), this.opts.store)
      this.jobs.set(job.id, job)
      this.current = job
    }
  }

  get (id: string): Job | undefined {
    return this.jobs.get(id)
  }

  ids (): string[] {
    return [...this.jobs.keys()]
  }

  /** Refuses with EBUSY while the default slot's job runs. */
  checkSlotFree (): void {
    if (this.current?.running) {
      throw new HerdsError('EBUSY', `job ${this.current.id} is still running here; wait for it (cat exit) or take your own job`)
    }
  }

  /** Starts a command in the default slot; refused with EBUSY while its job runs. */
  async runInSlot (cmd: string): Promise<Job> {
    this.checkSlotFree()
    this.current = await this.start(cmd)
    return this.current
  }

  /** Starts a command as a new job. */
  async start (cmd: string): Promise<Job> {
    const id = await this.opts.store.nextId()
    const dir = join(this.opts.outputDir, id)
    await mkdir(dir, { recursive: true })
    await mkdir(this.opts.cwd, { recursive: true })
    const job = await Job.start({ id, cmd, cwd: this.opts.cwd, env: this.opts.env, shell: this.opts.shell, dir, store: this.opts.store })
    this.jobs.set(id, job)
    return job
  }

  /** Ends every running job (the node is stopping on purpose). */
  async stopAll (): Promise<void> {
    const running = [...this.jobs.values()].filter((job) => job.running)
    for (const job of running) job.kill('SIGTERM')
    // A job that ignores SIGTERM is not allowed to keep the node from stopping.
    const grace = setTimeout(() => { for (const job of running) job.kill('SIGKILL') }, KILL_GRACE_MS)
    await Promise.all(running.map((job) => job.waitEnd()))
    clearTimeout(grace)
  }
}
