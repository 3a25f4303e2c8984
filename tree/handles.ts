/**
 * The handles one connection opened: only they may be used through it, and
 * only as opened (the numbers are the whole tree's, so another connection's
 * are refused with EBADF, and so is a write through a handle opened for
 * reading); there is a cap on how many it holds, and they are all released
 * when it goes away, so a peer that vanishes mid-read leaks no file descriptor.
 * Every call through it carries the session's id in its context
 * (CallContext.session).
 */
import { randomUUID } from 'node:crypto'
import { HerdsError } from './errno.js'
import { callOp, treeFromCall } from './peer.js'
import { handleOf, HANDLE_OPS, O_ACCMODE, O_RDWR, O_WRONLY, wantsWrite, type Created, type Tree } from './tree.js'

export interface TrackedTree {
  tree: Tree
  /** This connection's id, given to the tree below in every call's context. */
  session: string
  /** Releases every handle still open through this tree, a few at a time; resolves when all are. */
  releaseAll (): Promise<void>
}


/** The most files one mount's connection may hold open through the host. */
export const MAX_OPEN_PER_CONNECTION = 4096

/**
 * The most files a node holds open for its host (all the host's mounts
 * together): below the node's own descriptor limit, so its jobs keep some.
 */
export const MAX_OPEN_FOR_HOST = 16_384

/** Locks one mount's connection may be waiting for at once (each holds a request open to its node). */
export const MAX_WAITING_LOCKS = 64

export interface TrackOptions {
  /**
   * A mount's connection at the host: its lock owners are named after the
   * connection (so no other can name, and unlock, them; and a node can bound
   * each connection's), and at most MAX_WAITING_LOCKS of its locks wait at once.
   */
  ownLocks?: boolean
}

/** How many releases go out at once when a connection goes away (a node answers EAGAIN past 4,096). */
const RELEASE_CONCURRENCY = 32

/**
 * Tracks the handles opened through `inner` for one connection; past `maxOpen`
 * open files, `open` and `create` fail with EMFILE.
 */
export function trackHandles (inner: Tree, maxOpen = MAX_OPEN_FOR_HOST, opts: TrackOptions = {}): TrackedTree {
  const open = new Map<number, { path: string, flags: number }>()
  const session = randomUUID()
  const owners = session.replaceAll('-', '').slice(0, 16)
  let waiting = 0
  /** Opens sent on and not answered yet: they count against the limit too. */
  let opening = 0
  let closed = false
  const tree = treeFromCall(async (op, args, given) => {
    const ctx = { ...given, session }
    if (HANDLE_OPS.has(op)) {
      const file = open.get(args[1] as number)
      if (!file && op === 'release') return
      if (!file) throw new HerdsError('EBADF', `no file open as handle ${String(args[1])} on this connection`)
      if (op === 'write' && !wantsWrite(file.flags)) throw new HerdsError('EBADF', `handle ${String(args[1])} was opened for reading only`)
      if (op === 'setlk' && args[3] === 'write' && !wantsWrite(file.flags)) throw new HerdsError('EBADF', `handle ${String(args[1])} was opened for reading only: a write lock needs it open for writing`)
      if (op === 'read' && (file.flags & O_ACCMODE) === O_WRONLY) throw new HerdsError('EBADF', `handle ${String(args[1])} was opened for writing only`)
    }
    if (op === 'release') open.delete(args[1] as number)
    if (opts.ownLocks && (op === 'getlk' || op === 'setlk')) args = [args[0], args[1], `${owners}:${String(args[2])}`, ...args.slice(3)]
    const waits = opts.ownLocks && ((op === 'setlk' && args[6] === true) || (op === 'flock' && args[3] === true))
    if (waits) {
      if (waiting >= MAX_WAITING_LOCKS) throw new HerdsError('ENOLCK', `this connection waits for ${MAX_WAITING_LOCKS} locks already`)
      waiting++
      try { return await callOp(inner, op, args, ctx) } finally { waiting-- }
    }
    if (op !== 'open' && op !== 'create') return callOp(inner, op, args, ctx)
    if (open.size + opening >= maxOpen) {
      throw new HerdsError('EMFILE', `this connection has ${maxOpen} files open, the most it may: close some before opening more`)
    }
    opening++
    let result: number | Created
    try {
      result = await callOp(inner, op, args, ctx) as number | Created
    } finally {
      opening--
    }
    const fh = handleOf(result)
    // An open that finished after its connection closed is released at once.
    if (closed) await inner.release(args[0] as string, fh).catch(() => {})
    else open.set(fh, { path: args[0] as string, flags: op === 'create' ? O_RDWR : args[1] as number })
    return result
  })
  return {
    tree,
    session,
    releaseAll: async () => {
      closed = true
      const handles = [...open]
      open.clear()
      // A few at a time: a burst of thousands would be refused (EAGAIN) by the other side.
      await Promise.all(Array.from({ length: Math.min(RELEASE_CONCURRENCY, handles.length) }, async () => {
        for (let next = handles.pop(); next; next = handles.pop()) {
          // A failure here means the handle is gone already (its link closed, or it was released).
          await inner.release(next[1].path, next[0]).catch(() => {})
        }
      }))
    },
  }
}

/** The largest handle number the wire carries. */
const MAX_FH = 2 ** 31 - 1

/**
 * Handle numbers for open files: small positive integers, reused after a
 * wrap-around so a long-lived tree never runs out of them.
 */
export class HandleTable<T> {
  private readonly open = new Map<number, T>()
  private next = 1

  add (value: T): number {
    if (this.open.size >= MAX_FH - 1) throw new HerdsError('EMFILE', 'too many open files')
    while (this.open.has(this.next)) this.next = this.next >= MAX_FH ? 1 : this.next + 1
    const fh = this.next
    this.next = fh >= MAX_FH ? 1 : fh + 1
    this.open.set(fh, value)
    return fh
  }

  get (fh: number): T | undefined {
    return this.open.get(fh)
  }

  /** The value for `fh`, or EBADF. */
  must (fh: number): T {
    const value = this.open.get(fh)
    if (value === undefined) throw new HerdsError('EBADF', `no open file with handle ${fh}`)
    return value
  }

  /** Forgets `fh` and returns what it was. */
  take (fh: number): T | undefined {
    const value = this.open.get(fh)
    this.open.delete(fh)
    return value
  }
}
