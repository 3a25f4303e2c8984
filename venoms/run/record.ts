/** A job's record: what `status` shows and what the node keeps in lmdb. */
import { z } from 'zod'

export const JOB_STATES = ['idle', 'running', 'exited', 'killed', 'timed_out', 'failed_to_start', 'lost'] as const
export type JobState = typeof JOB_STATES[number]

export const JobRecordSchema = z.object({
  id: z.string(),
  state: z.enum(JOB_STATES),
  cmd: z.string(),
  cwd: z.string(),
  pid: z.number().int().nullable(),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  startedAt: z.string().nullable(),
  endedAt: z.string().nullable(),
  durationMs: z.number().nullable(),
  error: z.string().nullable(),
})
export type JobRecord = z.infer<typeof JobRecordSchema>

/** The output streams every job keeps on disk. */
export const STREAMS = ['stdout', 'stderr', 'output'] as const
export type StreamName = typeof STREAMS[number]

/** Where job records are kept; lmdb on a node, anything in a test. */
export interface JobStore {
  put (record: JobRecord): Promise<void>
  get (id: string): JobRecord | undefined
  list (): JobRecord[]
  /** A fresh job id, never handed out before on this node. */
  nextId (): Promise<string>
}
