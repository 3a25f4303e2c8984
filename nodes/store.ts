/** The node's lmdb database: job records and exec settings, kept across restarts. */
import { open, type RootDatabase } from 'lmdb'
import { JobRecordSchema, SettingsSchema, type JobRecord, type JobStore } from '../venoms/run/record.js'

/** Opens (or creates) the node's database in `path`. */
export function openNodeDb (path: string): RootDatabase {
  return open({ path, encoding: 'msgpack', compression: false })
}

/** Job records in lmdb, under `scope` (one exec/ directory: the node's, or a sandbox's). */
export function lmdbJobStore (db: RootDatabase, scope = 'exec'): JobStore {
  const JOB = `${scope}:job:`
  const NEXT = `${scope}:nextJob`
  const SETTINGS = `${scope}:settings`
  return {
    put: async (record) => { await db.put(JOB + record.id, record) },
    remove: async (id) => { await db.remove(JOB + id) },
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
        id = (db.get(NEXT) as number | undefined) ?? 1
        // A client may have named a job "7" with mkdir; never hand that id out again.
        while (db.get(JOB + id) !== undefined) id++
        db.put(NEXT, id + 1)
        db.put(JOB + id, { id: String(id), reserved: true })
      })
      return String(id)
    },
    loadSettings: () => {
      const parsed = SettingsSchema.safeParse(db.get(SETTINGS) ?? {})
      return parsed.success ? parsed.data : SettingsSchema.parse({})
    },
    saveSettings: async (settings) => { await db.put(SETTINGS, settings) },
    clear: async () => {
      await db.transaction(() => {
        for (const key of db.getKeys({ start: `${scope}:`, end: `${scope}:\uffff` })) db.remove(key)
      })
    },
  }
}

/** A record that no longer parses (written by another version) is skipped, not fatal. */
function parseRecord (value: unknown): JobRecord | undefined {
  const parsed = JobRecordSchema.safeParse(value)
  return parsed.success ? parsed.data : undefined
}
