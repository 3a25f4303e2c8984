/**
 * The mount's cache (DESIGN §9), for the parts of the namespace that are real
 * files on a node (volumes, exports, sandbox workspaces): attributes and
 * listings kept for a while, reads ahead on sequential reads, sequential
 * writes gathered into larger ones. Kept true by the host's invalidations
 * (`changed` frames from the nodes' watches) and by this mount's own changes.
 * Synthetic files (exec/, status.json…) are never cached: they change without
 * anyone writing them.
 */
import { HerdsError, toHerdsError } from '../tree/errno.js'
import { callOp, treeFromCall } from '../tree/peer.js'
import { handleOf, O_APPEND, O_RDWR, RENAME_EXCHANGE, wantsWrite, type CallContext, type Created, type DirEntry, type Op, type Stat, type Tree } from '../tree/tree.js'
import { childOf, folderOf } from '../tree/paths.js'
import type { Changed } from '../tree/changed.js'
import { Changes } from './changes.js'

/** Real files on a node: what a node's watch reports changes of. */
const CACHEABLE = /^\/nodes\/[^/]+\/(volumes|fs)(\/|$)|^\/nodes\/[^/]+\/sandboxes\/[^/]+\/workspace(\/|$)/

/** Is `path` a real file on a node (kept true by the host's `changed` frames), not a synthetic one? */
export function isRealFile (path: string): boolean {
  return CACHEABLE.test(path)
}

/** Hears of what the cache was told changed (tree/changed.ts), or that everything did (undefined). */
export type ChangeListener = (changed: Changed | undefined) => void

export interface CacheOptions {
  /** How long an attribute or a listing is kept without news of a change (a safety net for a lost watch). */
  ttlMs?: number
  /** How much a read fetches at least, when it can. */
  readAheadBytes?: number
  /** Windows of readAheadBytes fetched ahead of a sequential reader, at most. */
  readAheadWindows?: number
  /** Bytes fetched ahead and not yet read, for the whole mount, at most. */
  maxReadAheadBytes?: number
  /** How much sequential writing is gathered before it is sent. */
  writeBehindBytes?: number
  /** Gathered writes are sent after this long without another, so others see them soon. */
  idleFlushMs?: number
  /** Entries kept at most; the oldest go first. */
  maxEntries?: number
  /**
   * Bytes of writes sent and not yet answered, for the whole mount: a writer
   * is answered once its bytes are on their way, and waits only past this.
   */
  writeAheadBytes?: number
}

/** A write on its way to the node: the bytes it covers, and its end (a failure is kept for the file's writer). */
interface Sent { start: number, end: number, done: Promise<void> }

/** Bytes read ahead: `short` when fewer came than were asked for, which for a real file means its end. */
interface Window { offset: number, data: Uint8Array, short: boolean, tick: number, at: number }

/** A window being read ahead (or come, and not yet read). */
interface Ahead { offset: number, size: number, promise: Promise<Window | undefined> }

/** One open file of a cacheable path. */
interface OpenFile {
  path: string
  flags: number
  window?: Window
  /** Windows on their way (or come) ahead of the reader, in file order, each readAheadBytes from the last. */
  ahead: Ahead[]
  /** Where the file ends, as last heard (its size at open, a short read): nothing is read ahead past it. */
  eof: number
  dirty?: { offset: number, chunks: Uint8Array[], size: number }
  idle?: NodeJS.Timeout
  /** A write that failed when sent in the background: told at the next write, or at close. */
  failed?: HerdsError
  /** Its writes on their way to the node. */
  sent: Set<Sent>
  /** The writes and sends of this file, one at a time, in order. */
  queue: Promise<unknown>
}

interface Kept<V> { value: V, tick: number, at: number }

export class CachedTree {
  readonly tree: Tree
  private readonly inner: Tree
  private readonly opts: Required<CacheOptions>
  private readonly changes = new Changes()
  private readonly attrs = new Map<string, Kept<Stat | HerdsError>>()
  private readonly lists = new Map<string, Kept<string[]>>()
  private readonly files = new Map<number, OpenFile>()
  private readonly listeners = new Set<ChangeListener>()
  private readonly budget: Budget
  /** Bytes of the open files' `ahead` windows. */
  private aheadBytes = 0

  constructor (inner: Tree, opts: CacheOptions = {}) {
    this.inner = inner
    this.opts = { ttlMs: 5_000, readAheadBytes: 1024 * 1024, readAheadWindows: 4, maxReadAheadBytes: 32 * 1024 * 1024, writeBehindBytes: 1024 * 1024, idleFlushMs: 200, maxEntries: 20_000, writeAheadBytes: 16 * 1024 * 1024, ...opts }
    this.budget = new Budget(this.opts.writeAheadBytes)
    this.tree = treeFromCall((op, args, ctx) => this.call(op, args, ctx))
  }

  /** News of a change: nothing kept of these paths (and, but for a file's own attributes, of anything below them) is used again. */
  invalidate (changed: Changed): void {
    for (const path of changed.paths) this.changes.mark(path)
    for (const [path] of changed.names ?? []) this.changes.mark(path)
    for (const path of changed.attrs ?? []) this.changes.markOwn(path)
    for (const listener of this.listeners) listener(changed)
  }

  /** Tells `listener` of every change the cache hears of (the kernel's caches follow it too). */
  onChange (listener: ChangeListener): void {
    this.listeners.add(listener)
  }

  /**
   * Did `path` settle (no change in the last second)? What is read of it
   * while it changes may be half of a change, so it should not be kept long.
   */
  settled (path: string): boolean {
    return !this.changes.lately(path)
  }

  /** Did the name `path` settle: it, and the folders above it, unchanged in the last second (names in it may come and go)? */
  nameSettled (path: string): boolean {
    return !this.changes.nameLately(path)
  }

  /** Nothing kept is used again (after a reconnection, when changes may have been missed). */
  clear (): void {
    this.changes.markAll()
    this.attrs.clear()
    this.lists.clear()
    for (const listener of this.listeners) listener(undefined)
  }

  private async call (op: Op, args: unknown[], ctx?: CallContext): Promise<unknown> {
    const path = args[0] as string
    switch (op) {
      case 'getattr': return CACHEABLE.test(path) ? this.getattr(path, ctx) : this.inner.getattr(path, ctx)
      case 'readdir': return CACHEABLE.test(path) ? this.readdir(path, ctx) : this.inner.readdir(path, ctx)
      case 'readdirplus': return CACHEABLE.test(path) ? this.readdirplus(path, ctx) : this.inner.readdirplus(path, ctx)
      case 'open':
      case 'create': {
        if (!CACHEABLE.test(path)) return callOp(this.inner, op, args, ctx)
        // Close-to-open, as NFS does: an open asks anew, so open-stat-read is never stale.
        const before = op === 'open' ? this.fresh(this.attrs, path)?.value : undefined
        if (op === 'create') this.changes.mark(path)
        else this.attrs.delete(path)
        await this.sendAll(path)
        const result = await callOp(this.inner, op, args, ctx) as number | Created
        const fh = handleOf(result)
        const eof = before && !(before instanceof HerdsError) ? before.size : Infinity
        this.files.set(fh, { path, flags: op === 'open' ? args[1] as number : O_RDWR, queue: Promise.resolve(), sent: new Set(), ahead: [], eof })
        return result
      }
      case 'read': {
        const file = this.files.get(args[1] as number)
        if (!file) return callOp(this.inner, op, args, ctx)
        await this.sendAll(file.path)
        return this.read(args[1] as number, file, args[2] as number, args[3] as number, ctx)
      }
      case 'write': {
        const file = this.files.get(args[1] as number)
        if (!file) return callOp(this.inner, op, args, ctx)
        return this.write(args[1] as number, file, args[2] as number, args[3] as Uint8Array, ctx)
      }
      case 'flush': {
        const file = this.files.get(args[1] as number)
        if (!file) return callOp(this.inner, op, args, ctx)
        // A node's real file holds nothing back (its writes go straight to the file, tree/local.ts):
        // once this mount's writes have landed, close(2) has its answer without another round trip.
        return this.send(args[1] as number, file)
      }
      case 'release': {
        const fh = args[1] as number
        const file = this.files.get(fh)
        if (file) await this.send(fh, file).catch(() => {}) // close(2) heard of any failure already, at flush
        if (file) this.dropAhead(file, () => true)
        this.files.delete(fh)
        return callOp(this.inner, op, args, ctx)
      }
      case 'rename': {
        const to = args[1] as string
        await this.sendAll(path)
        await this.sendAll(to)
        try {
          const result = await callOp(this.inner, op, args, ctx)
          // Open files follow their file to its new name (both ways, for an exchange).
          const exchange = args[2] === RENAME_EXCHANGE
          const under = (p: string, dir: string): boolean => p === dir || p.startsWith(dir + '/')
          for (const file of this.files.values()) {
            if (under(file.path, path)) file.path = to + file.path.slice(path.length)
            else if (exchange && under(file.path, to)) file.path = path + file.path.slice(to.length)
          }
          return result
        } finally {
          this.changes.mark(path)
          this.changes.mark(to)
        }
      }
      case 'link': {
        // A new name for the file, whose own attributes (its link count) change too.
        await this.sendAll(path)
        try {
          return await callOp(this.inner, op, args, ctx)
        } finally {
          this.changes.mark(path)
          this.changes.mark(args[1] as string)
        }
      }
      case 'fsync': {
        // What this mount gathered goes first; then the node writes it to its disk.
        const file = this.files.get(args[1] as number)
        if (file) await this.send(args[1] as number, file)
        return callOp(this.inner, op, args, ctx)
      }
      case 'readlink':
      case 'statfs':
      case 'getxattr':
      case 'listxattr':
      case 'getlk':
        return callOp(this.inner, op, args, ctx)
      default: {
        // A change: what was gathered goes first, then nothing kept of the path outlives it.
        // So too for setlk and flock: a lock hands a file between writers.
        const target = op === 'symlink' ? args[1] as string : path
        await this.sendAll(target)
        try {
          return await callOp(this.inner, op, args, ctx)
        } finally {
          this.changes.mark(target)
        }
      }
    }
  }

  private async getattr (path: string, ctx?: CallContext): Promise<Stat> {
    await this.sendAll(path) // the size must count what this mount wrote
    const kept = this.fresh(this.attrs, path)
    if (kept) {
      if (kept.value instanceof HerdsError) throw kept.value
      return kept.value
    }
    const tick = this.changes.now()
    try {
      const stat = await this.inner.getattr(path, ctx)
      this.keep(this.attrs, path, stat, tick)
      return stat
    } catch (err) {
      const error = toHerdsError(err)
      // "No such file" is worth keeping too (compilers and git ask again and again).
      if (error.code === 'ENOENT') this.keep(this.attrs, path, error, tick)
      throw error
    }
  }

  private async readdir (path: string, ctx?: CallContext): Promise<string[]> {
    const kept = this.fresh(this.lists, path, true)
    if (kept) return kept.value
    const tick = this.changes.now()
    const names = await this.inner.readdir(path, ctx)
    this.keep(this.lists, path, names, tick, true)
    return names
  }

  /**
   * A listing with each name's attributes, asked anew (what it is for is a
   * listing that needs them all at once); both are kept as readdir and getattr
   * keep theirs. Sizes count what this mount wrote there first.
   */
  private async readdirplus (path: string, ctx?: CallContext): Promise<DirEntry[]> {
    const inFolder = new Set([...this.files.values()].map((file) => file.path).filter((p) => folderOf(p) === path))
    for (const file of inFolder) await this.sendAll(file)
    const tick = this.changes.now()
    const entries = await this.inner.readdirplus(path, ctx)
    this.keep(this.lists, path, entries.map(([name]) => name), tick, true)
    for (const [name, stat] of entries) if (stat) this.keep(this.attrs, childOf(path, name), stat, tick)
    return entries
  }

  /** What is kept of `path`, if it is young enough and nothing changed there since it was fetched (for a listing, `names`: no name in it). */
  private fresh<V> (map: Map<string, Kept<V>>, path: string, names = false): Kept<V> | undefined {
    const kept = map.get(path)
    if (!kept) return undefined
    if (Date.now() - kept.at < this.opts.ttlMs && !this.changes.since(path, kept.tick, names)) return kept
    map.delete(path)
    return undefined
  }

  /**
   * Keeps what was fetched, unless a change was heard of while it was on its
   * way, or lately: then it may have been read halfway through a change (a
   * truncate, then a write) whose second half the watch may not report.
   */
  private keep<V> (map: Map<string, Kept<V>>, path: string, value: V, tick: number, names = false): void {
    if (this.changes.since(path, tick, names) || this.changes.lately(path, names)) return
    map.delete(path)
    map.set(path, { value, tick, at: Date.now() })
    if (map.size > this.opts.maxEntries) map.delete(map.keys().next().value!)
  }

  /**
   * Serves a read from what was read ahead, fetching more as needed; past
   * the middle of a full window, the next few are fetched in the background
   * (the kernel asks for a whole window at once, so one ahead is not enough
   * to keep the reader from waiting on a round trip for each).
   */
  private async read (fh: number, file: OpenFile, offset: number, length: number, ctx?: CallContext): Promise<Uint8Array> {
    let window = this.usable(file, file.window, offset, length)
    if (!window) {
      // The kernel sends several reads at once: those that fall in one window wait for the same fetch.
      const ahead = this.aheadFor(file, offset) ?? this.fetchAhead(file, fh, offset, Math.max(length, this.opts.readAheadBytes))
      window = this.usable(file, await ahead.promise, offset, length) ?? await this.fetch(file, fh, offset, Math.max(length, this.opts.readAheadBytes), ctx)
      // A window that a change overtook on its way serves this read, and is not kept.
      file.window = this.valid(file, window) ? window : undefined
    }
    const start = offset - window.offset
    const piece = window.data.subarray(start, start + length)
    if (file.window && window.data.length >= this.opts.readAheadBytes && start + length > window.data.length / 2) {
      this.readAhead(fh, file, window.offset + window.data.length)
    }
    return piece
  }

  /** Fetches the windows after `end` that are not on their way yet, as many as the file's and the mount's bounds allow. */
  private readAhead (fh: number, file: OpenFile, end: number): void {
    // The windows ahead follow this one; any others were fetched for a reader that went elsewhere.
    this.dropAhead(file, (ahead) => ahead.offset < end)
    if (file.ahead.length > 0 && file.ahead[0].offset !== end) this.dropAhead(file, () => true)
    const last = file.ahead.at(-1)
    // Not past the end, as far as the mount knows it (a read there still asks: the file may have grown).
    for (let next = last ? last.offset + last.size : end; file.ahead.length < this.opts.readAheadWindows && next < file.eof; next += this.opts.readAheadBytes) {
      if (this.aheadBytes + this.opts.readAheadBytes > this.opts.maxReadAheadBytes) break
      this.fetchAhead(file, fh, next, this.opts.readAheadBytes)
    }
  }

  /** Starts fetching a window and lists it with the file's windows ahead (in file order); a failure is left to the reader's own fetch. */
  private fetchAhead (file: OpenFile, fh: number, offset: number, size: number): Ahead {
    const ahead: Ahead = { offset, size, promise: this.fetch(file, fh, offset, size).catch(() => undefined) }
    const at = file.ahead.findIndex((other) => other.offset > offset)
    file.ahead.splice(at < 0 ? file.ahead.length : at, 0, ahead)
    this.aheadBytes += size
    return ahead
  }

  /** The window ahead that holds `offset` (those wholly before it are dropped: the reader is past them). */
  private aheadFor (file: OpenFile, offset: number): Ahead | undefined {
    this.dropAhead(file, (ahead) => ahead.offset + ahead.size <= offset)
    return file.ahead.find((ahead) => ahead.offset <= offset && offset < ahead.offset + ahead.size)
  }

  /** Forgets the windows ahead that `drop` picks. */
  private dropAhead (file: OpenFile, drop: (ahead: Ahead) => boolean): void {
    file.ahead = file.ahead.filter((ahead) => {
      if (!drop(ahead)) return true
      this.aheadBytes -= ahead.size
      return false
    })
  }

  /** `window`, if it answers this read and nothing changed since it was read. */
  private usable (file: OpenFile, window: Window | undefined, offset: number, length: number): Window | undefined {
    if (!window || !this.valid(file, window) || offset < window.offset) return undefined
    const end = window.offset + window.data.length
    // A read at or past its end always asks again: the file may have grown.
    return offset + length <= end || (window.short && offset < end) ? window : undefined
  }

  /** Young enough, and nothing changed since it was read. */
  private valid (file: OpenFile, window: Window): boolean {
    return Date.now() - window.at < this.opts.ttlMs && !this.changes.since(file.path, window.tick)
  }

  /** Reads a window of the file, and learns where the file ends from it. */
  private async fetch (file: OpenFile, fh: number, offset: number, length: number, ctx?: CallContext): Promise<Window> {
    const tick = this.changes.now()
    const data = await this.inner.read(file.path, fh, offset, length, ctx)
    const short = data.length < length
    file.eof = short ? offset + data.length : Math.max(file.eof, offset + data.length)
    return { offset, data, short, tick, at: Date.now() }
  }

  /**
   * Gathers sequential writes, and answers a write once it is on its way
   * (its failure, if any, is told at the next write, flush or fsync); an
   * appending write waits for its answer, since only the node knows where it lands.
   */
  private async write (fh: number, file: OpenFile, offset: number, data: Uint8Array, ctx?: CallContext): Promise<number> {
    // Other handles' gathered writes to this file go first, so writes land in the order they were made.
    await this.sendAll(file.path, fh)
    const copy = Uint8Array.from(data) // the caller's buffer is reused once we return
    return this.serial(file, async () => {
      throwFailure(file)
      this.changes.mark(file.path)
      if ((file.flags & O_APPEND) !== 0 || !wantsWrite(file.flags)) {
        await this.drain(fh, file)
        throwFailure(file)
        return this.inner.write(file.path, fh, offset, copy, ctx)
      }
      const dirty = file.dirty
      if (dirty && offset === dirty.offset + dirty.size && dirty.size + copy.length <= this.opts.writeBehindBytes) {
        dirty.chunks.push(copy)
        dirty.size += copy.length
      } else {
        await this.sendNow(fh, file)
        file.dirty = { offset, chunks: [copy], size: copy.length }
        if (copy.length >= this.opts.writeBehindBytes) {
          await this.sendNow(fh, file)
          return copy.length
        }
      }
      // Sent soon even if nothing more comes, so a reader elsewhere is not kept waiting.
      clearTimeout(file.idle)
      file.idle = setTimeout(() => { this.send(fh, file).catch((err: HerdsError) => { file.failed ??= err }) }, this.opts.idleFlushMs)
      file.idle.unref()
      return copy.length
    })
  }

  /** Sends one open file's gathered writes and waits for all of its writes to land; a failure is told. */
  private send (fh: number, file: OpenFile): Promise<void> {
    return this.serial(file, async () => {
      await this.drain(fh, file)
      throwFailure(file)
    })
  }

  /**
   * Puts the gathered writes on their way as one write (the caller holds the
   * file's turn), once the mount's budget has room and no write it overlaps
   * is still on its way (those must land first, in order).
   */
  private async sendNow (fh: number, file: OpenFile): Promise<void> {
    clearTimeout(file.idle)
    const dirty = file.dirty
    if (!dirty) return
    file.dirty = undefined
    const data = dirty.chunks.length === 1 ? dirty.chunks[0] : Buffer.concat(dirty.chunks)
    const start = dirty.offset
    const end = start + data.length
    for (const other of file.sent) if (other.start < end && start < other.end) await other.done
    await this.budget.take(data.length)
    const sent: Sent = { start, end, done: Promise.resolve() }
    sent.done = this.writeAll(file, fh, start, data)
      .catch((err: unknown) => { file.failed ??= toHerdsError(err) })
      .finally(() => {
        file.sent.delete(sent)
        this.budget.give(data.length)
        this.changes.mark(file.path)
      })
    file.sent.add(sent)
  }

  /** Writes all of `data`, however many pieces the node takes it in. */
  private async writeAll (file: OpenFile, fh: number, offset: number, data: Uint8Array): Promise<void> {
    for (let done = 0; done < data.length;) done += await this.inner.write(file.path, fh, offset + done, data.subarray(done))
  }

  /** Sends the gathered writes and waits for all of the file's writes on their way to land (failures are kept in `failed`). */
  private async drain (fh: number, file: OpenFile): Promise<void> {
    await this.sendNow(fh, file)
    while (file.sent.size > 0) await Promise.all([...file.sent].map((sent) => sent.done))
  }

  /** Sends every open file's gathered writes to `path` (but `except`'s) and waits for them to land; a failure is kept for that file's writer. */
  private async sendAll (path: string, except?: number): Promise<void> {
    for (const [fh, file] of this.files) {
      if (fh === except || file.path !== path) continue
      await this.serial(file, () => this.drain(fh, file)).catch((err: HerdsError) => { file.failed ??= toHerdsError(err) })
    }
  }

  /** Runs `work` when the file's earlier writes and sends are done: one at a time, in order. */
  private serial<T> (file: OpenFile, work: () => Promise<T>): Promise<T> {
    const turn = file.queue.then(work, work)
    file.queue = turn.catch(() => {})
    return turn
  }
}

/**
 * Bytes that may be on their way at once: a taker waits, in turn, until what
 * it takes fits (or nothing else is out, so one piece larger than all still goes).
 */
class Budget {
  private used = 0
  private readonly waiting: Array<{ bytes: number, go: () => void }> = []

  constructor (private readonly max: number) {}

  take (bytes: number): Promise<void> {
    if (this.waiting.length === 0 && this.fits(bytes)) {
      this.used += bytes
      return Promise.resolve()
    }
    return new Promise((resolve) => { this.waiting.push({ bytes, go: resolve }) })
  }

  give (bytes: number): void {
    this.used -= bytes
    while (this.waiting.length > 0 && this.fits(this.waiting[0].bytes)) {
      const next = this.waiting.shift()!
      this.used += next.bytes
      next.go()
    }
  }

  private fits (bytes: number): boolean {
    return this.used === 0 || this.used + bytes <= this.max
  }
}

/** A write that failed in the background is told once, to the next writer or closer. */
function throwFailure (file: OpenFile): void {
  const failed = file.failed
  if (!failed) return
  file.failed = undefined
  throw failed
}
