/** A job's record: what `status` shows and what the node keeps in lmdb. */
import { z } from 'zod'

export const JOB_STATES = ['idle', 'running', 'exited', 'killed', 'timed_out', 'failed_to_start', 'lost', 'expired'] as const
export type JobState = typeof JOB_STATES[number]

/** States after which nothing changes any more. */
export const ENDED_STATES: readonly JobState[] = ['exited', 'killed', 'timed_out', 'failed_to_start', 'lost', 'expired']

/**
 * What `jobs/<id>/tty` takes before the cmd: the terminal's size and TERM.
 * Strict, so a misspelt key is refused rather than ignored.
 */
export const TtySchema = z.object({
  rows: z.number().int().min(1).max(1000).default(24),
  cols: z.number().int().min(1).max(1000).default(80),
  term: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/, 'a terminal type such as xterm-256color').default('xterm-256color'),
}).strict()
export type Tty = z.infer<typeof TtySchema>

export const JobRecordSchema = z.object({
  id: z.string(),
  state: z.enum(JOB_STATES),
  cmd: z.string(),
  cwd: z.string(),
  pid: z.number().int().nullable(),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  createdAt: z.string().default(() => new Date().toISOString()),
  startedAt: z.string().nullable(),
  endedAt: z.string().nullable(),
  durationMs: z.number().nullable(),
  /** Seconds the job may run (0: no limit), as set in `timeout` when it started. */
  timeout: z.number().default(0),
  /** Output past the per-job cap was dropped (a line in the output says where). */
  truncated: z.boolean().default(false),
  error: z.string().nullable(),
  /** The job's pseudo-terminal and its size now, or null for a job on pipes. */
  tty: TtySchema.nullable().default(null),
})
export type JobRecord = z.infer<typeof JobRecordSchema>

/** The output streams every job keeps on disk. */
export const STREAMS = ['stdout', 'stderr', 'output'] as const
export type StreamName = typeof STREAMS[number]

/** What a user set in an exec/ directory: `env` and `timeout`. */
export const SettingsSchema = z.object({
  env: z.record(z.string(), z.string()).default({}),
  timeout: z.number().min(0).default(0),
})
export type Settings = z.infer<typeof SettingsSchema>

/** Where job records are kept; lmdb on a node. */
export interface JobStore {
  put (record: JobRecord): Promise<void>
  remove (id: string): Promise<void>
  get (id: string): JobRecord | undefined
  list (): JobRecord[]
  /** A fresh job id, never handed out before by this store. */
  nextId (): Promise<string>
  loadSettings (): Settings
  saveSettings (settings: Settings): Promise<void>
  /** Removes every record and setting of this store. */
  clear (): Promise<void>
}
