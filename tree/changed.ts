/**
 * What a `changed` frame says (docs/wire.md#changes), and the few things done
 * with it on its way from a node's watch to a mount: gathered, folded to a
 * bound, moved under another prefix. Three kinds, so a mount does only what
 * the change needs: a name that came or went says what it names now, and a
 * file whose content or attributes changed says that its names still stand.
 * Nothing here loads zod or msgpack: the node's watch threads use it too.
 */
import { joinPath, splitPath } from './paths.js'

/** What changed, by kind; any list may be empty. */
export interface Changed {
  /** Anything at or below each path may differ (a flood folded, a watch that failed, a reconnection). */
  paths: string[]
  /** Only the entry's own attributes or content changed: each name at and below it names what it did. */
  attrs?: string[]
  /** A name came, went or was replaced: [path, the type it names now as S_IFMT bits, 0 for nothing]. Below it, anything may differ. */
  names?: Array<[string, number]>
}

/** Changes that are gathered (a batch of a watch, an outbox that waits), each path once, in its strongest kind. */
export class Gathered {
  private readonly paths = new Set<string>()
  private readonly attrs = new Set<string>()
  private readonly names = new Map<string, number>()

  get size (): number {
    return this.paths.size + this.attrs.size + this.names.size
  }

  /** A later report of a name wins over an earlier one; "anything may differ" wins over the rest. */
  add (changes: Changed): void {
    for (const path of changes.paths) {
      this.paths.add(path)
      this.attrs.delete(path)
      this.names.delete(path)
    }
    for (const [path, type] of changes.names ?? []) {
      if (this.paths.has(path)) continue
      this.names.set(path, type)
      this.attrs.delete(path)
    }
    for (const path of changes.attrs ?? []) if (!this.paths.has(path) && !this.names.has(path)) this.attrs.add(path)
  }

  /** Folds what waits to at most `max` paths in all (see foldChanges), so what is gathered stays bounded. */
  fold (max: number): void {
    if (this.size > max) this.add(this.take(max))
  }

  /** What was gathered, at most `max` paths in all (see foldChanges); empties this. */
  take (max: number): Changed {
    const changes: Changed = { paths: [...this.paths] }
    if (this.attrs.size) changes.attrs = [...this.attrs]
    if (this.names.size) changes.names = [...this.names]
    this.paths.clear()
    this.attrs.clear()
    this.names.clear()
    return foldChanges(changes, max)
  }
}

/**
 * Paths folded to their folders, one level at a time, until at most `max`
 * are left: a change to a folder stands for everything below it, so this is
 * never wrong, only coarser.
 */
export function foldPaths (paths: Iterable<string>, max: number): string[] {
  let all = [...new Set(paths)]
  let depth = Math.max(0, ...all.map((p) => splitPath(p).length))
  while (all.length > max && depth > 0) {
    depth--
    all = [...new Set(all.map((p) => joinPath(splitPath(p).slice(0, depth))))]
  }
  return all
}

/** At most `max` paths in all: past it, every change counts as "anything may differ" and is folded to its folders. */
export function foldChanges (changes: Changed, max: number): Changed {
  if (changedPaths(changes).length <= max) return changes
  return { paths: foldPaths(changedPaths(changes), max) }
}

/** Every path the changes name, whatever the kind. */
export function changedPaths (changes: Changed): string[] {
  return [...changes.paths, ...changes.attrs ?? [], ...(changes.names ?? []).map(([path]) => path)]
}

/** The same changes with each path moved by `move`; a path it returns undefined for is left out. */
export function moveChanges (changes: Changed, move: (path: string) => string | undefined): Changed {
  const moved: Changed = { paths: changes.paths.map(move).filter((p) => p !== undefined) }
  const attrs = changes.attrs?.map(move).filter((p) => p !== undefined)
  const names = changes.names?.flatMap(([path, type]): Array<[string, number]> => {
    const to = move(path)
    return to === undefined ? [] : [[to, type]]
  })
  if (attrs?.length) moved.attrs = attrs
  if (names?.length) moved.names = names
  return moved
}
