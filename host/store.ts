/** The host's lmdb database: the index of jobs across nodes and the tokens, kept across restarts. */
import { open, type RootDatabase } from 'lmdb'
import { z } from 'zod'
import { JobSummarySchema, type JobSummary } from '../tree/wire.js'
import { TokenStore } from './tokens.js'
import { Exposures } from './ports.js'

/** Jobs the index keeps at most; the oldest go first. */
export const INDEX_LIMIT = 10_000

const IndexedJobSchema = JobSummarySchema.extend({ node: z.string().max(64) })
export type IndexedJob = z.infer<typeof IndexedJobSchema>

export interface JobIndex {
  /** Records what a node said of its jobs. */
  update (node: string, jobs: JobSummary[]): Promise<void>
  /** The most recent jobs across nodes, newest first. */
  recent (limit: number): IndexedJob[]
}

export interface HostStore {
  jobs: JobIndex
  tokens: TokenStore
  ports: Exposures
  close (): Promise<void>
}

/** Opens (or creates) the host's database in `path`. */
export function openHostStore (path: string): HostStore {
  const db: RootDatabase = open({ path, encoding: 'msgpack', compression: false })
  return { jobs: jobIndex(db), tokens: new TokenStore(db), ports: new Exposures(db), close: () => db.close() }
}

function jobIndex (db: RootDatabase): JobIndex {
  const all = (): IndexedJob[] => {
    const jobs: IndexedJob[] = []
    for (const { value } of db.getRange({ start: 'job:', end: 'job:\uffff' })) {
      const parsed = IndexedJobSchema.safeParse(value)
      if (parsed.success) jobs.push(parsed.data)
    }
    return jobs.sort((a, b) => (b.startedAt ?? b.createdAt).localeCompare(a.startedAt ?? a.createdAt))
  }
  let updates = 0
  return {
    update: async (node, jobs) => {
      await db.transaction(() => {
        for (const job of jobs) db.put(`job:${node}/${job.id}`, { ...job, node })
      })
      // Trimming reads the whole index: do it now and then, not on every update.
      if (++updates % 100 !== 1) return
      const jobsNow = all()
      if (jobsNow.length > INDEX_LIMIT) {
        await db.transaction(() => {
          for (const job of jobsNow.slice(INDEX_LIMIT)) db.remove(`job:${job.node}/${job.id}`)
        })
      }
    },
    recent: (limit) => all().slice(0, limit),
  }
}
