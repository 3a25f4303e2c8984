/**
 * What the mount has heard of changes, so its cache can tell whether
 * something it kept is still good: a clock that ticks at every change, and
 * for each changed path the tick and time of its last change. A change to a
 * path stands for everything below it too, and for its folder's listing and
 * attributes; a change of a file's own attributes or content stands for that
 * file alone. A lookup walks a path's folders (a few steps), never the whole cache.
 */
import { folderOf } from '../tree/paths.js'

/** How long after a change a path counts as changing (its attributes are then not kept). */
export const SETTLE_MS = 1000
/** Marks kept at most; past that, old ones go, and if none are old, everything counts as changed. */
const MAX_MARKS = 50_000

interface Mark { tick: number, at: number }

export class Changes {
  private tick = 0
  /** The path and everything below it changed. */
  private readonly subtree = new Map<string, Mark>()
  /** The folder's list of names changed (a name in it came or went). */
  private readonly listing = new Map<string, Mark>()
  /** Only the path's own attributes or content changed. */
  private readonly own = new Map<string, Mark>()
  private all: Mark = { tick: 0, at: 0 }

  /** The clock now: what is fetched from now on is newer than every change so far. */
  now (): number {
    return this.tick
  }

  mark (path: string): void {
    const mark = { tick: ++this.tick, at: Date.now() }
    this.subtree.set(path, mark)
    this.listing.set(folderOf(path), mark)
    if (this.subtree.size > MAX_MARKS || this.listing.size > MAX_MARKS) this.prune()
  }

  /** Only `path`'s own attributes or content changed: its folder's listing, and what is below it, still stand. */
  markOwn (path: string): void {
    this.own.set(path, { tick: ++this.tick, at: Date.now() })
    if (this.own.size > MAX_MARKS) this.prune()
  }

  /** Everything changed (a reconnection: what happened meanwhile is not known). */
  markAll (): void {
    this.all = { tick: ++this.tick, at: Date.now() }
    this.subtree.clear()
    this.listing.clear()
    this.own.clear()
  }

  /** Has `path` (or a name in it) changed since `tick`? For a listing (`names`), changes of the folder's own attributes do not count. */
  since (path: string, tick: number, names = false): boolean {
    return this.latest(path, (m) => m.tick > tick, true, !names)
  }

  /** Did `path` change in the last SETTLE_MS? For a listing (`names`), as for since. */
  lately (path: string, names = false): boolean {
    const after = Date.now() - SETTLE_MS
    return this.latest(path, (m) => m.at > after, true, !names)
  }

  /**
   * Did `path` itself, or a folder above it, change in the last SETTLE_MS?
   * Names that came or went in it do not count: which file it names is the same.
   */
  nameLately (path: string): boolean {
    const after = Date.now() - SETTLE_MS
    return this.latest(path, (m) => m.at > after, false, false)
  }

  /** Does a mark of `path` pass `test`: one of a folder above it, and as asked, of its listing or of its own attributes? */
  private latest (path: string, test: (mark: Mark) => boolean, listing: boolean, own: boolean): boolean {
    if (test(this.all)) return true
    const attrs = own ? this.own.get(path) : undefined
    if (attrs && test(attrs)) return true
    // A folder whose names changed has new attributes too (mtime, nlink): rsync
    // reads them to decide whether the folder's time still needs setting.
    const names = listing ? this.listing.get(path) : undefined
    if (names && test(names)) return true
    for (let p = path; ; p = folderOf(p)) {
      const mark = this.subtree.get(p)
      if (mark && test(mark)) return true
      if (p === '/') return false
    }
  }

  /**
   * Drops marks too old to matter: whatever was kept before them is past the
   * cache's time to live by now. If that frees nothing, forgets them all and
   * counts everything as changed, which is always safe.
   */
  private prune (maxAgeMs = 60_000): void {
    const before = Date.now() - maxAgeMs
    for (const map of [this.subtree, this.listing, this.own]) {
      for (const [path, mark] of map) if (mark.at < before) map.delete(path)
    }
    if (this.subtree.size > MAX_MARKS || this.listing.size > MAX_MARKS || this.own.size > MAX_MARKS) this.markAll()
  }
}
