/**
 * What the host remembers of what people did: errors.log (recent refusals, in
 * memory, newest last) and audit.jsonl (every control write and every job
 * start, with the token's name, appended to a file that outlives the host).
 */
import { appendFileSync, existsSync, readFileSync, renameSync, statSync } from 'node:fs'
import type { HerdsError } from '../tree/errno.js'

/** How many refusals errors.log keeps. */
const RECENT_ERRORS = 200
/** audit.jsonl is moved to audit.jsonl.1 past this size, so it cannot fill the disk. */
const AUDIT_MAX_BYTES = 16 * 1024 * 1024

export interface AuditEntry {
  /** The token's name. */
  token: string
  /** "control" for a write under /.herds/control, "job" for a job started. */
  event: 'control' | 'job'
  op: string
  path: string
  ok: boolean
  error?: string
  cmd?: string
}

export class Journal {
  private readonly errors: string[] = []
  private readonly auditPath: string

  constructor (auditPath: string) {
    this.auditPath = auditPath
  }

  /** Notes a refusal for errors.log: time, path, errno and reason, one line. */
  refused (path: string, err: HerdsError, token?: string): void {
    const who = token ? ` [${token}]` : ''
    const line = `${new Date().toISOString()} ${path}${who} ${err.code}: ${err.message}`.replace(/[\r\n]+/g, ' ')
    this.errors.push(line)
    if (this.errors.length > RECENT_ERRORS) this.errors.shift()
  }

  errorsLog (): string {
    return this.errors.map((line) => line + '\n').join('')
  }

  /** Appends one line to audit.jsonl; written synchronously, so a crash right after loses nothing. */
  audit (entry: AuditEntry): void {
    try {
      if (existsSync(this.auditPath) && statSync(this.auditPath).size > AUDIT_MAX_BYTES) renameSync(this.auditPath, this.auditPath + '.1')
      appendFileSync(this.auditPath, JSON.stringify({ time: new Date().toISOString(), ...entry }) + '\n', { mode: 0o600 })
    } catch (err) {
      // A full disk must not stop the host; the refusal is kept where it can be read.
      this.errors.push(`${new Date().toISOString()} audit.jsonl EIO: cannot append: ${(err as Error).message}`)
    }
  }

  auditLog (): string {
    return existsSync(this.auditPath) ? readFileSync(this.auditPath, 'utf8') : ''
  }
}
