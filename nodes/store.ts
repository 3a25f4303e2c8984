/** The node's lmdb database: job records, kept across restarts of the node. */
import { open, type RootDatabase } from 'lmdb'
import { JobRecordSchema, type JobRecord, type JobStore } from '../venoms/run/record.js'

const JOB = 'job:'
const NEXT_JOB = 'meta:nextJob'

/** Opens (or creates) the node's database in `path`. */
export function openNodeDb (path: string): RootDatabase {
  return open({ path, encoding: 'msgpack', compression: false })
}

/** Job records in lmdb. */
export function lmdbJobStore (db: RootDatabase): JobStore {
  return {
    put: async (record) => { await db.put(JOB + record.id, record) },
    get: (id) => parseRecord(db.get(JOB + id)),
    list: () => {
      const records: JobRecord[] = []
      for (const { value } of db.getRange({ start: JOB, end: JOB + '\uffff' })) {
        const record = parseRecord(value)
        if (record) records.push(record)
      }
      return records
    },
    nextId: async () => {
      let id = 0
      await db.transaction(() => {
        id = (db.get(NEXT_JOB) as number | undefined) ?? 1
        db.put(NEXT_JOB, id + 1)
      })
      return String(id)
    },
  }
}

/** A record that no longer parses (written by another version) is skipped, not fatal. */
function parseRecord (value: unknown): JobRecord | undefined {
  const parsed = JobRecordSchema.safeParse(value)
  return parsed.success ? parsed.data : undefined
}
