/**
 * Auditing, as a view of the namespace for one session: every change under
 * /.herds/control and every job started through a `cmd` file is written to
 * audit.jsonl with the token's name (control changes to audit-control.jsonl
 * too); refused control writes go to errors.log.
 */
import { createHash, type Hash } from 'node:crypto'
import { toHerdsError, type HerdsError } from '../tree/errno.js'
import { callOp, treeFromCall } from '../tree/peer.js'
import { handleOf, wantsWrite, type Created, type Op, type Tree } from '../tree/tree.js'
import { FIELD_MAX_BYTES, type Journal } from './journal.js'

const CONTROL = /^\/\.herds\/control\//
/** An exposed port: made and removed by mkdir and rmdir, and audited as control changes are. */
const EXPOSED = /^\/nodes\/[^/]+\/(sandboxes\/[^/]+\/)?ports\/[^/]+$/
/** A cmd file: writing it and closing starts a job. */
const CMD = /^\/nodes\/[^/]+\/(sandboxes\/[^/]+\/)?exec\/(jobs\/[^/]+\/)?cmd$|^\/\.herds\/venoms\/run\/(jobs\/[^/]+\/)?cmd$/
/** The most of a command kept for its audit line (the journal cuts it further, once escaped). */
const CMD_KEPT_BYTES = FIELD_MAX_BYTES

/** Changes under control that are not file writes. */
const CONTROL_OPS: ReadonlySet<Op> = new Set(['mkdir', 'rmdir', 'unlink', 'rename', 'link', 'symlink', 'chmod', 'mknod', 'setxattr', 'removexattr'])

interface Watched {
  path: string
  kind: 'control' | 'job'
  /** The start of a command, for its audit line (control writes keep nothing: they may carry secrets). */
  written: Buffer[]
  keptBytes: number
  /** All of the command, counted and hashed as it comes, so its line says what ran without holding it. */
  totalBytes: number
  hash: Hash
  /** Something was written since the last close acted. */
  wrote: boolean
  /** Set once a refusal of this handle was logged, so close does not log it again. */
  refused: boolean
}

export function audited (inner: Tree, token: string, journal: Journal): Tree {
  const open = new Map<number, Watched>()
  const refused = (w: Watched, err: HerdsError): void => {
    if (w.kind === 'control' && !w.refused) journal.refused(w.path, err, token)
    w.refused = true
  }
  return treeFromCall(async (op, args, ctx) => {
    const path = args[0] as string
    if ((CONTROL_OPS.has(op) && CONTROL.test(path)) || ((op === 'mkdir' || op === 'rmdir') && EXPOSED.test(path))) {
      try {
        const result = await callOp(inner, op, args, ctx)
        journal.audit({ token, event: 'control', op, path, ok: true })
        return result
      } catch (err) {
        const error = toHerdsError(err)
        journal.refused(path, error, token)
        journal.audit({ token, event: 'control', op, path, ok: false, error: `${error.code}: ${error.message}` })
        throw error
      }
    }
    // create on an existing file opens it for writing: watched the same way.
    if ((op === 'create' || (op === 'open' && wantsWrite(args[1] as number))) && (CONTROL.test(path) || CMD.test(path))) {
      const watched: Watched = { path, kind: CMD.test(path) ? 'job' : 'control', written: [], keptBytes: 0, totalBytes: 0, hash: createHash('sha256'), wrote: false, refused: false }
      try {
        const opened = await callOp(inner, op, args, ctx) as number | Created
        open.set(handleOf(opened), watched)
        return opened
      } catch (err) {
        refused(watched, toHerdsError(err))
        throw err
      }
    }
    const watched = op === 'write' || op === 'flush' || op === 'release' ? open.get(args[1] as number) : undefined
    if (!watched) return callOp(inner, op, args, ctx)
    if (op === 'release') open.delete(args[1] as number)
    try {
      const result = await callOp(inner, op, args, ctx)
      if (op === 'write') keep(watched, args[3] as Uint8Array)
      if (op === 'flush' && watched.wrote) record(watched, true)
      return result
    } catch (err) {
      const error = toHerdsError(err)
      if (!watched.refused && op !== 'release') record(watched, false, error)
      refused(watched, error)
      throw error
    }
  })

  /** Keeps at most CMD_KEPT_BYTES bytes of what a job's cmd was given, and the length and hash of all of it. */
  function keep (w: Watched, data: Uint8Array): void {
    w.wrote = true
    if (w.kind !== 'job') return
    w.totalBytes += data.length
    w.hash.update(data)
    if (w.keptBytes >= CMD_KEPT_BYTES) return
    const piece = Buffer.from(data.subarray(0, CMD_KEPT_BYTES - w.keptBytes))
    w.written.push(piece)
    w.keptBytes += piece.length
  }

  /** One audit line for what a close acted on (or a write refused). */
  function record (w: Watched, ok: boolean, error?: HerdsError): void {
    const text = Buffer.concat(w.written).toString('utf8')
    const command = { cmd: text, cmdBytes: w.totalBytes, cmdSha256: w.hash.digest('hex') }
    w.written = []
    w.keptBytes = 0
    w.totalBytes = 0
    w.hash = createHash('sha256')
    w.wrote = false
    journal.audit({
      token,
      event: w.kind,
      op: 'write',
      path: w.path,
      ok,
      ...(error ? { error: `${error.code}: ${error.message}` } : {}),
      // A refused command is not kept: it ran nowhere, and would only fill the log.
      ...(w.kind === 'job' && ok ? command : {}),
    })
  }
}
