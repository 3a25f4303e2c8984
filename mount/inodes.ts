/**
 * The inode table of the low-level FUSE adapter: the kernel names files by
 * number, the Tree by path. Each inode is a name in a parent inode, so a
 * rename moves one entry and every path below it follows; the kernel's
 * lookup counts say when a number may be forgotten. An inode whose name was
 * removed (unlink, or renamed over) keeps its last path for the handles still
 * open on it, as a file on a disk stays readable through its descriptors.
 */
import { HerdsError } from '../tree/errno.js'
import { childOf } from '../tree/paths.js'
import type { Stat } from '../tree/tree.js'

/** The root's number, fixed by FUSE. */
export const ROOT = 1

/** Inodes the kernel may hold at once; past it, lookups of new names fail with ENFILE. */
export const MAX_INODES = 1_000_000

export interface Inode {
  readonly id: number
  /** Parent inode, or 0 once the name is gone. */
  parent: number
  name: string
  /** Lookups the kernel holds (reply_entry, reply_create, readdirplus entries). */
  lookups: number
  /** Names known below a folder, to their inodes. */
  children?: Map<string, number>
  /** The path it had when its name went away (parent 0). */
  lastPath?: string
  /** What the tree last said of it: answers fstat once its name is gone. */
  stat?: Stat
  /** When (Date.now) the kernel was last answered with `stat` fresh from the tree; unset once it may have changed since. */
  statAt?: number
  /** Handles open on it (open and create, less release). */
  opens?: number
  /** What the page cache holds was read at this version ("mtime:size"); see keep_cache. */
  pages?: string
}

export class Inodes {
  private readonly byId = new Map<number, Inode>()
  private nextId = ROOT + 1

  constructor () {
    this.byId.set(ROOT, { id: ROOT, parent: 0, name: '', lookups: Infinity, lastPath: '/' })
  }

  get size (): number {
    return this.byId.size
  }

  get (id: number): Inode | undefined {
    return this.byId.get(id)
  }

  /** The Tree path of an inode; ESTALE if the kernel names one we do not know. */
  path (id: number): string {
    const parts: string[] = []
    for (let node = this.byId.get(id); node; node = this.byId.get(node.parent)) {
      if (node.parent === 0) return (node.lastPath === '/' ? '' : node.lastPath ?? '') + (parts.length ? '/' + parts.reverse().join('/') : '') || '/'
      parts.push(node.name)
    }
    throw new HerdsError('ESTALE', `the mount no longer knows inode ${id}`)
  }

  /** The path of `name` in the folder `parent`. */
  childPath (parent: number, name: string): string {
    return childOf(this.path(parent), name)
  }

  /** The inode of `name` in `parent`, if the kernel holds it. */
  child (parent: number, name: string): Inode | undefined {
    const id = this.byId.get(parent)?.children?.get(name)
    return id === undefined ? undefined : this.byId.get(id)
  }

  /** Counts one lookup of `name` in `parent`, making its inode if new. */
  remember (parent: number, name: string): Inode {
    const dir = this.byId.get(parent)
    if (!dir) throw new HerdsError('ESTALE', `the mount no longer knows inode ${parent}`)
    const known = this.child(parent, name)
    if (known) {
      known.lookups++
      return known
    }
    if (this.byId.size >= MAX_INODES) throw new HerdsError('ENFILE', `the mount holds ${MAX_INODES} files already; let the kernel forget some (echo 2 > /proc/sys/vm/drop_caches)`)
    const node: Inode = { id: this.nextId++, parent, name, lookups: 1 }
    this.byId.set(node.id, node)
    ;(dir.children ??= new Map()).set(name, node.id)
    return node
  }

  /** The kernel dropped `count` lookups; an inode nobody holds is forgotten. */
  forget (id: number, count: number): void {
    const node = this.byId.get(id)
    if (!node || id === ROOT) return
    node.lookups -= count
    if (node.lookups > 0) return
    this.byId.delete(id)
    const dir = this.byId.get(node.parent)
    if (dir?.children?.get(node.name) === id) {
      dir.children.delete(node.name)
      if (dir.children.size === 0) dir.children = undefined
    }
  }

  /** `name` went away from `parent` (unlink, rmdir): its inode lives on under its last path. */
  removed (parent: number, name: string): void {
    const node = this.child(parent, name)
    if (!node) return
    node.lastPath = this.path(node.id)
    this.byId.get(parent)!.children!.delete(name)
    node.parent = 0
  }

  /** A rename: the inode moves, and whatever the new name held is removed. */
  moved (parent: number, name: string, newParent: number, newName: string): void {
    if (parent === newParent && name === newName) return
    const node = this.child(parent, name)
    this.removed(newParent, newName)
    if (!node) return
    this.byId.get(parent)!.children!.delete(name)
    const dir = this.byId.get(newParent)
    if (!dir) { node.lastPath = this.childPath(ROOT, newName); node.parent = 0; return }
    node.parent = newParent
    node.name = newName
    ;(dir.children ??= new Map()).set(newName, node.id)
  }

  /** RENAME_EXCHANGE: the two names swap inodes (either may be unknown to the kernel). */
  exchanged (parent: number, name: string, newParent: number, newName: string): void {
    if (parent === newParent && name === newName) return
    const a = this.child(parent, name)
    const b = this.child(newParent, newName)
    this.detach(parent, name)
    this.detach(newParent, newName)
    if (a) this.attach(a, newParent, newName)
    if (b) this.attach(b, parent, name)
  }

  private detach (parent: number, name: string): void {
    const dir = this.byId.get(parent)
    dir?.children?.delete(name)
    if (dir?.children?.size === 0) dir.children = undefined
  }

  private attach (node: Inode, parent: number, name: string): void {
    node.parent = parent
    node.name = name
    ;(this.byId.get(parent)!.children ??= new Map()).set(name, node.id)
  }

  /** Every inode the kernel holds, for invalidating them all (after a reconnection). */
  all (): IterableIterator<Inode> {
    return this.byId.values()
  }

  /** The inodes at or below `path`, with the folder that holds each. */
  * under (path: string): Generator<Inode> {
    const start = this.find(path)
    if (!start) return
    const stack = [start]
    while (stack.length) {
      const node = stack.pop()!
      yield node
      for (const id of node.children?.values() ?? []) {
        const child = this.byId.get(id)
        if (child) stack.push(child)
      }
    }
  }

  /** The inode at `path`, if the kernel holds it. */
  find (path: string): Inode | undefined {
    let node = this.byId.get(ROOT)
    for (const name of path.split('/').filter(Boolean)) {
      node = node && this.child(node.id, name)
    }
    return node
  }
}
