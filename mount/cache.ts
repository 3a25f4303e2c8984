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
import { O_APPEND, wantsWrite, type CallContext, type Stat, type Tree } from '../tree/tree.js'

/** Real files on a node: what a node's watch reports changes of. */
const CACHEABLE = /^\/nodes\/[^/]+\/(volumes|fs)(\/|$)|^\/nodes\/[^/]+\/sandboxes\/[^/]+\/workspace(\/|$)/

export interface CacheOptions {
  /** How long an attribute or a listing is kept without news of a change (a safety net for a lost watch). */
  ttlMs?: number
  /** How much a read fetches at least, when it can. */
  readAheadBytes?: number
  /** How much sequential writing is gathered before it is sent. */
  writeBehindBytes?: number
  /** Entries kept at most; the oldest go first. */
  maxEntries?: number
}

/** Bytes read ahead: `short` when fewer came than were asked for, which for a real file means its end. */
interface Window { offset: number, data: Uint8Array, short: boolean }

/** One open file of a cacheable path. */
interface OpenFile {
  path: string
  flags: number
  window?: Window
  prefetch?: { offset: number, promise: Promise<Window | undefined> }
  dirty?: { offset: number, chunks: Uint8Array[], size: number }
  /** A gathered write that failed when sent: told at the next write, or at close. */
  failed?: HerdsError
  /** Bumped by every invalidation, so a read-ahead that lands after one is thrown away. */
  generation: number
}

/** How long after news of a change a path's attributes are fetched afresh every time. */
const SETTLE_MS = 1000

const parentOf = (path: string): string => path.slice(0, path.lastIndexOf('/')) || '/'

export class CachedTree {
  readonly tree: Tree
  private readonly inner: Tree
  private readonly ttlMs: number
  private readonly readAhead: number
  private readonly writeBehind: number
  private readonly maxEntries: number
  private readonly attrs = new Map<string, { value: Stat | HerdsError, at: number }>()
  private readonly lists = new Map<string, { names: string[], at: number }>()
  private readonly files = new Map<number, OpenFile>()
  /**
   * Paths told of a change lately, and until when: what is fetched of them
   * then is not kept, because it may have been read mid-change (between a
   * truncate and a write), and the watch may not report the second half.
   */
  private readonly unsettled = new Map<string, number>()

  constructor (inner: Tree, opts: CacheOptions = {}) {
    this.inner = inner
    this.ttlMs = opts.ttlMs ?? 5_000
    this.readAhead = opts.readAheadBytes ?? 1024 * 1024
    this.writeBehind = opts.writeBehindBytes ?? 1024 * 1024
    this.maxEntries = opts.maxEntries ?? 20_000
    this.tree = treeFromCall((op, args, ctx) => this.call(op, args, ctx))
  }

  /** Drops what is kept of these paths, their folders and anything below them. */
  invalidate (paths: string[]): void {
    if (paths.length > 100) return this.clear()
    const until = Date.now() + SETTLE_MS
    for (const path of paths) {
      this.remember(this.unsettled, path, until)
      this.remember(this.unsettled, parentOf(path), until)
      const below = path === '/' ? '/' : path + '/'
      for (const map of [this.attrs, this.lists]) {
        map.delete(path)
        map.delete(parentOf(path))
        for (const key of map.keys()) if (key.startsWith(below)) map.delete(key)
      }
      for (const file of this.files.values()) {
        if (file.path === path || file.path.startsWith(below)) this.dropWindow(file)
      }
    }
  }

  /** Drops everything kept (after a reconnection, when changes may have been missed). */
  clear (): void {
    this.attrs.clear()
    this.lists.clear()
    for (const file of this.files.values()) this.dropWindow(file)
  }

  /** Sends what was gathered for one open file (fsync). */
  async sync (fh: number): Promise<void> {
    const file = this.files.get(fh)
    if (file) await this.sendDirty(fh, file)
  }

  private async call (op: keyof Tree, args: unknown[], ctx?: CallContext): Promise<unknown> {
    const path = args[0] as string
    switch (op) {
      case 'getattr': return CACHEABLE.test(path) ? this.getattr(path, ctx) : this.inner.getattr(path, ctx)
      case 'readdir': return CACHEABLE.test(path) ? this.readdir(path, ctx) : this.inner.readdir(path, ctx)
      case 'open':
      case 'create': {
        // Close-to-open, as NFS does: an open always asks anew, so open-stat-read is never stale.
        if (op === 'create') this.invalidate([path])
        else this.attrs.delete(path)
        const fh = await callOp(this.inner, op, args, ctx) as number
        if (CACHEABLE.test(path)) this.files.set(fh, { path, flags: op === 'open' ? args[1] as number : 2, generation: 0 })
        return fh
      }
      case 'read': {
        const file = this.files.get(args[1] as number)
        if (!file) return callOp(this.inner, op, args, ctx)
        await this.sendDirtyOf(file.path)
        return this.read(args[1] as number, file, args[2] as number, args[3] as number, ctx)
      }
      case 'write': {
        const file = this.files.get(args[1] as number)
        if (!file) return callOp(this.inner, op, args, ctx)
        return this.write(args[1] as number, file, args[2] as number, args[3] as Uint8Array, ctx)
      }
      case 'flush': {
        const file = this.files.get(args[1] as number)
        if (file) await this.sendDirty(args[1] as number, file)
        return callOp(this.inner, op, args, ctx)
      }
      case 'release': {
        const fh = args[1] as number
        const file = this.files.get(fh)
        if (file) await this.sendDirty(fh, file).catch(() => {}) // close(2) already heard of any failure, at flush
        this.files.delete(fh)
        return callOp(this.inner, op, args, ctx)
      }
      case 'rename': {
        await this.sendDirtyOf(path)
        this.invalidate([path, args[1] as string])
        const result = await callOp(this.inner, op, args, ctx)
        this.invalidate([path, args[1] as string])
        return result
      }
      case 'readlink':
      case 'statfs':
        return callOp(this.inner, op, args, ctx)
      default: {
        // A change: what was gathered goes first, then nothing kept of the path outlives it.
        const target = op === 'symlink' ? args[1] as string : path
        await this.sendDirtyOf(target)
        try {
          return await callOp(this.inner, op, args, ctx)
        } finally {
          this.invalidate([target])
        }
      }
    }
  }

  private async getattr (path: string, ctx?: CallContext): Promise<Stat> {
    await this.sendDirtyOf(path) // the size must count what this mount wrote
    const kept = this.attrs.get(path)
    if (kept && Date.now() - kept.at < this.ttlMs) {
      if (kept.value instanceof HerdsError) throw kept.value
      return kept.value
    }
    const keep = this.settled(path)
    try {
      const stat = await this.inner.getattr(path, ctx)
      if (keep) this.remember(this.attrs, path, { value: stat, at: Date.now() })
      return stat
    } catch (err) {
      const error = toHerdsError(err)
      // "No such file" is worth keeping too (compilers and git ask again and again).
      if (error.code === 'ENOENT' && keep) this.remember(this.attrs, path, { value: error, at: Date.now() })
      throw error
    }
  }

  private async readdir (path: string, ctx?: CallContext): Promise<string[]> {
    const kept = this.lists.get(path)
    if (kept && Date.now() - kept.at < this.ttlMs) return kept.names
    const keep = this.settled(path)
    const names = await this.inner.readdir(path, ctx)
    if (keep) this.remember(this.lists, path, { names, at: Date.now() })
    return names
  }

  /** May what is fetched of `path` now be kept? Not while it is changing. */
  private settled (path: string): boolean {
    const until = this.unsettled.get(path)
    if (until === undefined) return true
    if (until > Date.now()) return false
    this.unsettled.delete(path)
    return true
  }

  private remember<V> (map: Map<string, V>, key: string, value: V): void {
    map.delete(key)
    map.set(key, value)
    if (map.size > this.maxEntries) map.delete(map.keys().next().value!)
  }

  /** Serves a read from what was read ahead, fetching more (and the next piece in the background) as needed. */
  private async read (fh: number, file: OpenFile, offset: number, length: number, ctx?: CallContext): Promise<Uint8Array> {
    if (!covers(file.window, offset, length)) {
      const ahead = file.prefetch && file.prefetch.offset === offset ? await file.prefetch.promise : undefined
      file.prefetch = undefined
      file.window = ahead ?? await this.fetch(file.path, fh, offset, Math.max(length, this.readAhead), ctx)
    }
    const window = file.window!
    const start = offset - window.offset
    const piece = window.data.subarray(start, start + length)
    // Past the middle of a full window: fetch the next one while this one is being read.
    const end = window.offset + window.data.length
    if (window.data.length >= this.readAhead && !file.prefetch && start + length > window.data.length / 2) {
      const generation = file.generation
      const promise = this.fetch(file.path, fh, end, this.readAhead)
        .then((window) => generation === file.generation ? window : undefined, () => undefined)
      file.prefetch = { offset: end, promise }
    }
    return piece
  }

  private async fetch (path: string, fh: number, offset: number, length: number, ctx?: CallContext): Promise<Window> {
    const data = await this.inner.read(path, fh, offset, length, ctx)
    return { offset, data, short: data.length < length }
  }

  private dropWindow (file: OpenFile): void {
    file.window = undefined
    file.prefetch = undefined
    file.generation++
  }

  /** Gathers sequential writes; anything else sends what was gathered first. */
  private async write (fh: number, file: OpenFile, offset: number, data: Uint8Array, ctx?: CallContext): Promise<number> {
    if (file.failed) throw file.failed
    this.attrs.delete(file.path)
    for (const other of this.files.values()) if (other.path === file.path) this.dropWindow(other)
    const gathering = (file.flags & O_APPEND) === 0 && wantsWrite(file.flags) && data.length < this.writeBehind
    const dirty = file.dirty
    if (gathering && dirty && offset === dirty.offset + dirty.size && dirty.size + data.length <= this.writeBehind) {
      dirty.chunks.push(Uint8Array.from(data)) // the caller's buffer is reused once we return
      dirty.size += data.length
      return data.length
    }
    await this.sendDirty(fh, file)
    if (!gathering) return this.inner.write(file.path, fh, offset, data, ctx)
    file.dirty = { offset, chunks: [Uint8Array.from(data)], size: data.length }
    return data.length
  }

  /** Sends one open file's gathered writes, as one write. */
  private async sendDirty (fh: number, file: OpenFile): Promise<void> {
    if (file.failed) {
      const failed = file.failed
      file.failed = undefined
      throw failed
    }
    const dirty = file.dirty
    if (!dirty) return
    file.dirty = undefined
    const data = Buffer.concat(dirty.chunks)
    try {
      for (let done = 0; done < data.length;) done += await this.inner.write(file.path, fh, dirty.offset + done, data.subarray(done))
    } catch (err) {
      throw toHerdsError(err)
    } finally {
      this.attrs.delete(file.path)
    }
  }

  /** Sends every open file's gathered writes to `path` (before it is read, listed or changed). */
  private async sendDirtyOf (path: string): Promise<void> {
    for (const [fh, file] of this.files) {
      if (file.dirty && file.path === path) {
        await this.sendDirty(fh, file).catch((err: HerdsError) => { file.failed = err })
      }
    }
  }
}

/** Can this read be answered from the window? A read at or past its end always asks again (the file may have grown). */
function covers (window: Window | undefined, offset: number, length: number): boolean {
  if (!window || offset < window.offset) return false
  const end = window.offset + window.data.length
  return offset + length <= end || (window.short && offset < end)
}
