/**
 * What the host remembers of what people did: errors.log (recent refusals, in
 * memory, newest last) and the audit log (every control write and every job
 * start, with the token's name, appended to files that outlive the host).
 *
 * The audit log is bounded three ways, so no token can use it to erase it:
 * each line is cut to at most MAX_LINE_BYTES; each file is rotated with a cap
 * on disk; and control changes also go to a file of their own, which job
 * starts never write, so no number of jobs can push them out.
 */
import { appendFileSync, existsSync, readFileSync, renameSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { HerdsError } from '../tree/errno.js'

/** How many refusals errors.log keeps. */
const RECENT_ERRORS = 200
/** audit.jsonl (every entry) is moved to audit.jsonl.1 past this size, replacing the one before. */
const AUDIT_MAX_BYTES = 16 * 1024 * 1024
/** audit-control.jsonl (control changes only) is moved to audit-control.jsonl.1 past this size. */
const CONTROL_MAX_BYTES = 4 * 1024 * 1024
/** The most of a command, a path or an error one line keeps, counted once escaped for JSON. */
export const FIELD_MAX_BYTES = 512
/** No line is longer: three fields cut to FIELD_MAX_BYTES and the rest, which is short. */
export const MAX_LINE_BYTES = 2048

export interface AuditEntry {
  /** The token's name. */
  token: string
  /** "control" for a write under /.herds/control, "job" for a job started. */
  event: 'control' | 'job'
  op: string
  path: string
  ok: boolean
  error?: string
  /** The start of the command (a job that started). */
  cmd?: string
  /** The whole command's length in bytes, and its SHA-256 (hex): what ran, even when `cmd` is cut. */
  cmdBytes?: number
  cmdSha256?: string
}

export interface JournalOptions {
  /** See AUDIT_MAX_BYTES. */
  auditMaxBytes?: number
  /** See CONTROL_MAX_BYTES. */
  controlMaxBytes?: number
}

/** One file of the audit log: appended a line at a time, and moved to `<path>.1` past `maxBytes`. */
class Rotated {
  readonly path: string
  private readonly maxBytes: number

  constructor (path: string, maxBytes: number) {
    this.path = path
    this.maxBytes = maxBytes
  }

  /** Written synchronously, so a crash right after loses nothing. */
  append (line: string): void {
    if (existsSync(this.path) && statSync(this.path).size + Buffer.byteLength(line) > this.maxBytes) renameSync(this.path, this.path + '.1')
    appendFileSync(this.path, line, { mode: 0o600 })
  }

  /** The file as it is now, or with the one before it first. */
  read (withPrevious = false): string {
    const of = (path: string): string => existsSync(path) ? readFileSync(path, 'utf8') : ''
    return (withPrevious ? of(this.path + '.1') : '') + of(this.path)
  }
}

export class Journal {
  private readonly errors: string[] = []
  private readonly all: Rotated
  private readonly control: Rotated

  /** `auditPath` is audit.jsonl; audit-control.jsonl is made next to it. */
  constructor (auditPath: string, opts: JournalOptions = {}) {
    this.all = new Rotated(auditPath, opts.auditMaxBytes ?? AUDIT_MAX_BYTES)
    this.control = new Rotated(join(dirname(auditPath), 'audit-control.jsonl'), opts.controlMaxBytes ?? CONTROL_MAX_BYTES)
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

  /** Appends one line to audit.jsonl, and a control change to audit-control.jsonl as well. */
  audit (entry: AuditEntry): void {
    const line = JSON.stringify(boundEntry({ time: new Date().toISOString(), ...entry })) + '\n'
    const files = entry.event === 'control' ? [this.all, this.control] : [this.all]
    for (const file of files) {
      try {
        file.append(line)
      } catch (err) {
        // A full disk must not stop the host; the refusal is kept where it can be read.
        this.errors.push(`${new Date().toISOString()} ${file.path} EIO: cannot append: ${(err as Error).message}`)
        if (this.errors.length > RECENT_ERRORS) this.errors.shift()
      }
    }
  }

  /** audit.jsonl: every entry since it was last rotated. */
  auditLog (): string {
    return this.all.read()
  }

  /** audit-control.jsonl: the control changes, with those of the file before it (at most 2 × 4 MiB). */
  controlLog (): string {
    return this.control.read(true)
  }
}

/** The entry with its free-text fields cut to FIELD_MAX_BYTES once escaped, and `cut: true` if any was. */
function boundEntry<E extends AuditEntry & { time: string }> (entry: E): E & { cut?: true } {
  let cut = false
  const bounded: E & { cut?: true } = { ...entry }
  for (const field of ['path', 'error', 'cmd'] as const) {
    const text = entry[field]
    if (text === undefined) continue
    const kept = cutEscaped(text, FIELD_MAX_BYTES)
    if (kept.length < text.length) { bounded[field] = kept; cut = true }
  }
  if (cut) bounded.cut = true
  return bounded
}

/** The longest start of `text` whose JSON escape (control bytes become \u0001, six bytes) fits in `maxBytes`. */
export function cutEscaped (text: string, maxBytes: number): string {
  if (Buffer.byteLength(JSON.stringify(text)) - 2 <= maxBytes) return text
  let used = 0
  let end = 0
  for (const char of text) {
    used += Buffer.byteLength(JSON.stringify(char)) - 2
    if (used > maxBytes) break
    end += char.length
  }
  return text.slice(0, end)
}
