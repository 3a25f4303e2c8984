/**
 * Synthetic trees: files that are computed, or that act when written, declared
 * as a table of handlers per directory. A directory may also mount another Tree
 * at one of its names; operations below it are forwarded unchanged.
 */
import { HerdsError, toHerdsError } from './errno.js'
import { HandleTable } from './handles.js'
import { childOf, joinPath, splitPath } from './paths.js'
import { MAX_DIRPLUS, O_ACCMODE, O_WRONLY, S_IFDIR, S_IFREG, makeStat, wantsWrite, type CallContext, type Created, type DirEntry, type FileLock, type FlockOp, type LockType, type Stat, type TimeSpec, type Statfs, type Tree } from './tree.js'

/** One open file's behaviour. Missing methods mean the operation is refused. */
export interface FileHandle {
  read? (offset: number, length: number, ctx?: CallContext): Promise<Uint8Array> | Uint8Array
  write? (offset: number, data: Uint8Array): Promise<number> | number
  /** Runs on every close(2); an error here is what close(2) reports. */
  flush? (): Promise<void> | void
  release? (): Promise<void> | void
}

export interface SynthFile {
  kind: 'file'
  /** Permission bits: 0o444 read-only, 0o222 write-only, 0o666 both. */
  mode: number
  /** What getattr reports (default 0: read to end of file); reads ignore it (the mount uses direct_io). */
  size? (): Promise<number> | number
  open (flags: number, ctx?: CallContext): Promise<FileHandle> | FileHandle
  /** O_TRUNC and truncate(1) on a writable file; a no-op unless given. */
  truncate? (size: number): Promise<void> | void
}

export interface SynthDir {
  kind: 'dir'
  mode?: number
  /** The fixed names of this directory and their handlers. */
  entries?: Record<string, SynthNode>
  /** Names computed on demand (nodes, jobs), listed after the fixed ones. */
  list? (): Promise<string[]> | string[]
  lookup? (name: string): Promise<SynthNode | undefined> | SynthNode | undefined
  /**
   * A tree whose root is merged under this directory (a union, as Plan 9 binds
   * do): names not in `entries` are that tree's. An error instead of a tree
   * (an offline node) lists only the fixed names and fails every other.
   */
  union? (): Tree | HerdsError
  mkdir? (name: string, mode: number): Promise<void> | void
  rmdir? (name: string): Promise<void> | void
  /** What to say when `name` is not here, in words a user can act on ("no node named x (online: studio)"). */
  missing? (name: string): string
}

/** Another tree, mounted at this name. */
export interface SynthMount {
  kind: 'tree'
  tree: Tree
}

export type SynthNode = SynthFile | SynthDir | SynthMount

/** An open file: a synthetic file's handle, or a file opened in a mounted tree. */
type OpenFile = { handle: FileHandle, flags: number } | { tree: Tree, path: string, fh: number }

type Resolved =
  | { kind: 'node', node: SynthFile | SynthDir, parent: SynthDir | undefined, name: string }
  | { kind: 'tree', tree: Tree, rest: string }

const STATFS: Statfs = { bsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, namemax: 255 }

export class SyntheticTree implements Tree {
  private readonly root: SynthDir
  private readonly handles = new HandleTable<OpenFile>()
  private readonly bornMs = Date.now()

  constructor (root: SynthDir) {
    this.root = root
  }

  /** Finds what a path names: a synthetic node, or a mounted tree and the rest of the path. */
  private async resolve (path: string): Promise<Resolved> {
    const parts = splitPath(path)
    let node: SynthNode = this.root
    let parent: SynthDir | undefined
    for (let i = 0; i < parts.length; i++) {
      if (node.kind === 'tree') return { kind: 'tree', tree: node.tree, rest: joinPath(parts.slice(i)) }
      if (node.kind !== 'dir') throw new HerdsError('ENOTDIR', `not a directory: ${joinPath(parts.slice(0, i))}`)
      const name = parts[i]
      const child: SynthNode | undefined = (Object.hasOwn(node.entries ?? {}, name) ? node.entries![name] : undefined) ??
        (node.lookup ? await node.lookup(name) : undefined)
      // A name neither fixed nor looked up is the union's.
      if (!child && node.union) return { kind: 'tree', tree: unionTree(node), rest: joinPath(parts.slice(i)) }
      if (!child) throw new HerdsError('ENOENT', node.missing?.(name) ?? `no such file or directory: ${path}`)
      parent = node
      node = child
    }
    if (node.kind === 'tree') return { kind: 'tree', tree: node.tree, rest: '/' }
    return { kind: 'node', node, parent, name: parts.at(-1) ?? '' }
  }

  private handle (fh: number): OpenFile {
    return this.handles.must(fh)
  }

  /** Gives an open file a handle number of this tree's own, unique across its mounted trees. */
  private remember (file: OpenFile): number {
    return this.handles.add(file)
  }

  async getattr (path: string, ctx?: CallContext): Promise<Stat> {
    const r = await this.resolve(path)
    if (r.kind === 'tree') return r.tree.getattr(r.rest, ctx)
    if (r.node.kind === 'dir') return makeStat(S_IFDIR | (r.node.mode ?? 0o555), 0, this.bornMs)
    return makeStat(S_IFREG | r.node.mode, r.node.size ? await r.node.size() : 0)
  }

  async readdir (path: string, ctx?: CallContext): Promise<string[]> {
    const r = await this.resolve(path)
    if (r.kind === 'tree') return r.tree.readdir(r.rest, ctx)
    if (r.node.kind !== 'dir') throw new HerdsError('ENOTDIR', `not a directory: ${path}`)
    const fixed = Object.keys(r.node.entries ?? {})
    const dynamic = r.node.list ? await r.node.list() : []
    const union = r.node.union?.()
    const merged = union && !(union instanceof HerdsError) ? await union.readdir('/', ctx) : []
    return [...new Set([...fixed, ...dynamic, ...merged])]
  }
  /** A mounted tree's own; a synthetic folder's names, each with getattr's answer (computed here, so no round trip). */
  async readdirplus (path: string, ctx?: CallContext): Promise<DirEntry[]> {
    const r = await this.resolve(path)
    if (r.kind === 'tree') return r.tree.readdirplus(r.rest, ctx)
    const names = await this.readdir(path, ctx)
    return Promise.all(names.map(async (name, i): Promise<DirEntry> =>
      [name, i < MAX_DIRPLUS ? await this.getattr(childOf(path, name), ctx).catch(() => null) : null]))
  }


  async open (path: string, flags: number, ctx?: CallContext): Promise<number> {
    const r = await this.resolve(path)
    if (r.kind === 'tree') return this.remember({ tree: r.tree, path: r.rest, fh: await r.tree.open(r.rest, flags, ctx) })
    if (r.node.kind === 'dir') throw new HerdsError('EISDIR', `is a directory: ${path}`)
    const writing = wantsWrite(flags)
    if (writing && !(r.node.mode & 0o222)) throw new HerdsError('EACCES', `read-only file: ${path}`)
    if ((flags & O_ACCMODE) !== O_WRONLY && !(r.node.mode & 0o444)) throw new HerdsError('EACCES', `write-only file: ${path}`)
    return this.remember({ handle: await r.node.open(flags, ctx), flags })
  }

  // Operations on an open file follow its handle, not its path: the path may
  // have been renamed, or pruned, since the open.

  async read (path: string, fh: number, offset: number, length: number, ctx?: CallContext): Promise<Uint8Array> {
    const file = this.handle(fh)
    if ('tree' in file) return file.tree.read(file.path, file.fh, offset, length, ctx)
    if ((file.flags & O_ACCMODE) === O_WRONLY) throw new HerdsError('EBADF', `opened for writing only: ${path}`)
    if (!file.handle.read) throw new HerdsError('EACCES', `not readable: ${path}`)
    return file.handle.read(offset, length, ctx)
  }

  async write (path: string, fh: number, offset: number, data: Uint8Array, ctx?: CallContext): Promise<number> {
    const file = this.handle(fh)
    if ('tree' in file) return file.tree.write(file.path, file.fh, offset, data, ctx)
    // As with any file: a handle opened for reading does not write (nor act on close).
    if (!wantsWrite(file.flags)) throw new HerdsError('EBADF', `opened for reading only: ${path}`)
    if (!file.handle.write) throw new HerdsError('EACCES', `not writable: ${path}`)
    return file.handle.write(offset, data)
  }

  async flush (_path: string, fh: number, ctx?: CallContext): Promise<void> {
    const file = this.handle(fh)
    if ('tree' in file) return file.tree.flush(file.path, file.fh, ctx)
    await file.handle.flush?.()
  }

  async release (_path: string, fh: number, ctx?: CallContext): Promise<void> {
    const file = this.handles.take(fh)
    if (!file) return
    if ('tree' in file) return file.tree.release(file.path, file.fh, ctx)
    await file.handle.release?.()
  }

  async truncate (path: string, size: number, ctx?: CallContext): Promise<Stat | void> {
    const r = await this.resolve(path)
    if (r.kind === 'tree') return r.tree.truncate(r.rest, size, ctx)
    if (r.node.kind === 'dir') throw new HerdsError('EISDIR', `is a directory: ${path}`)
    if (!(r.node.mode & 0o222)) throw new HerdsError('EACCES', `read-only file: ${path}`)
    await r.node.truncate?.(size)
  }

  async create (path: string, mode: number, ctx?: CallContext): Promise<Created> {
    const { target, rest } = await this.parentOf(path)
    if ('tree' in target) {
      const { fh, stat } = await target.tree.create(rest, mode, ctx)
      return { fh: this.remember({ tree: target.tree, path: rest, fh }), stat }
    }
    const existing = await this.resolve(path).catch(() => undefined)
    if (existing) return { fh: await this.open(path, 1, ctx), stat: null }
    throw new HerdsError('EACCES', `files cannot be created here: ${path}`)
  }

  async mkdir (path: string, mode: number, ctx?: CallContext): Promise<void> {
    const { target, name, rest } = await this.parentOf(path, 'mkdir')
    if ('tree' in target) return target.tree.mkdir(rest, mode, ctx)
    if (target.entries?.[name] || await target.lookup?.(name)) throw new HerdsError('EEXIST', `already exists: ${path}`)
    if (!target.mkdir) throw new HerdsError('EACCES', `directories cannot be made here: ${path}`)
    await target.mkdir(name, mode)
  }

  async rmdir (path: string, ctx?: CallContext): Promise<void> {
    const { target, name, rest } = await this.parentOf(path, 'rmdir')
    if ('tree' in target) return target.tree.rmdir(rest, ctx)
    if (!target.rmdir) throw new HerdsError('EACCES', `cannot be removed: ${path}`)
    await target.rmdir(name)
  }

  async unlink (path: string, ctx?: CallContext): Promise<void> {
    const { target, rest } = await this.parentOf(path)
    if ('tree' in target) return target.tree.unlink(rest, ctx)
    await this.resolve(path)
    throw new HerdsError('EACCES', `cannot be removed: ${path}`)
  }

  async rename (from: string, to: string, flags?: number, ctx?: CallContext): Promise<void> {
    const a = await this.parentOf(from)
    const b = await this.parentOf(to)
    if ('tree' in a.target && 'tree' in b.target && a.target.tree === b.target.tree) return a.target.tree.rename(a.rest, b.rest, flags, ctx)
    if ('tree' in a.target || 'tree' in b.target) throw new HerdsError('EXDEV', 'cannot rename across trees')
    throw new HerdsError('EACCES', `cannot be renamed: ${from}`)
  }

  async link (from: string, to: string, ctx?: CallContext): Promise<void> {
    const a = await this.parentOf(from)
    const b = await this.parentOf(to)
    if ('tree' in a.target && 'tree' in b.target && a.target.tree === b.target.tree) return a.target.tree.link(a.rest, b.rest, ctx)
    if ('tree' in a.target && 'tree' in b.target) throw new HerdsError('EXDEV', 'cannot make a hard link across trees')
    throw new HerdsError('EPERM', `hard links cannot be made here: ${to}`)
  }

  async symlink (target: string, path: string, ctx?: CallContext): Promise<void> {
    const p = await this.parentOf(path)
    if ('tree' in p.target) return p.target.tree.symlink(target, p.rest, ctx)
    throw new HerdsError('EACCES', `links cannot be made here: ${path}`)
  }

  async readlink (path: string, ctx?: CallContext): Promise<string> {
    const r = await this.resolve(path)
    if (r.kind === 'tree') return r.tree.readlink(r.rest, ctx)
    throw new HerdsError('EINVAL', `not a symbolic link: ${path}`)
  }

  async utimens (path: string, atime: TimeSpec | null, mtime: TimeSpec | null, ctx?: CallContext): Promise<Stat | void> {
    const r = await this.resolve(path)
    if (r.kind === 'tree') return r.tree.utimens(r.rest, atime, mtime, ctx)
    // touch on a synthetic file is harmless; its times are computed.
  }

  async chmod (path: string, mode: number, ctx?: CallContext): Promise<Stat | void> {
    const r = await this.resolve(path)
    if (r.kind === 'tree') return r.tree.chmod(r.rest, mode, ctx)
    throw new HerdsError('EPERM', `the mode of a synthetic file is fixed: ${path}`)
  }

  async mknod (path: string, mode: number, ctx?: CallContext): Promise<void> {
    const p = await this.parentOf(path)
    if ('tree' in p.target) return p.target.tree.mknod(p.rest, mode, ctx)
    throw new HerdsError('EACCES', `fifos and sockets cannot be made here: ${path}`)
  }

  async fsync (_path: string, fh: number, datasync: boolean, ctx?: CallContext): Promise<void> {
    const file = this.handle(fh)
    if ('tree' in file) return file.tree.fsync(file.path, file.fh, datasync, ctx)
    // A synthetic file acts when written and closed; there is nothing to keep on a disk.
  }

  async getlk (path: string, fh: number, owner: string, type: LockType, start: number, length: number, ctx?: CallContext): Promise<FileLock | null> {
    const file = this.handle(fh)
    if ('tree' in file) return file.tree.getlk(file.path, file.fh, owner, type, start, length, ctx)
    throw new HerdsError('ENOLCK', `a synthetic file takes no locks: ${path}`)
  }

  async setlk (path: string, fh: number, owner: string, type: LockType, start: number, length: number, wait: boolean, ctx?: CallContext): Promise<void> {
    const file = this.handle(fh)
    if ('tree' in file) return file.tree.setlk(file.path, file.fh, owner, type, start, length, wait, ctx)
    if (type === 'unlock') return // close(2) unlocks every file it closes
    throw new HerdsError('ENOLCK', `a synthetic file takes no locks: ${path}`)
  }

  async flock (path: string, fh: number, op: FlockOp, wait: boolean, ctx?: CallContext): Promise<void> {
    const file = this.handle(fh)
    if ('tree' in file) return file.tree.flock(file.path, file.fh, op, wait, ctx)
    if (op === 'unlock') return
    throw new HerdsError('ENOLCK', `a synthetic file takes no locks: ${path}`)
  }

  async getxattr (path: string, name: string, ctx?: CallContext): Promise<Uint8Array> {
    const r = await this.resolve(path)
    if (r.kind === 'tree') return r.tree.getxattr(r.rest, name, ctx)
    throw new HerdsError('ENODATA', `a synthetic file has no extended attributes: ${path}`)
  }

  async setxattr (path: string, name: string, value: Uint8Array, flags: number, ctx?: CallContext): Promise<void> {
    const r = await this.resolve(path)
    if (r.kind === 'tree') return r.tree.setxattr(r.rest, name, value, flags, ctx)
    throw new HerdsError('ENOTSUP', `a synthetic file keeps no extended attributes: ${path}`)
  }

  async listxattr (path: string, ctx?: CallContext): Promise<string[]> {
    const r = await this.resolve(path)
    if (r.kind === 'tree') return r.tree.listxattr(r.rest, ctx)
    return []
  }

  async removexattr (path: string, name: string, ctx?: CallContext): Promise<void> {
    const r = await this.resolve(path)
    if (r.kind === 'tree') return r.tree.removexattr(r.rest, name, ctx)
    throw new HerdsError('ENODATA', `a synthetic file has no extended attributes: ${path}`)
  }

  async statfs (path: string, ctx?: CallContext): Promise<Statfs> {
    const r = await this.resolve(path).catch(() => undefined)
    if (r?.kind === 'tree') return r.tree.statfs(r.rest, ctx)
    return STATFS
  }

  /**
   * Resolves the directory holding `path`: either a synthetic directory and
   * the last name, or a mounted tree and the path within it.
   */
  private async parentOf (path: string, own?: 'mkdir' | 'rmdir'): Promise<{ target: SynthDir | { tree: Tree }, name: string, rest: string }> {
    const parts = splitPath(path)
    if (parts.length === 0) throw new HerdsError('EBUSY', 'the root cannot be changed')
    const name = parts.at(-1)!
    const r = await this.resolve(joinPath(parts.slice(0, -1)))
    if (r.kind === 'tree') return { target: { tree: r.tree }, name, rest: joinPath([...splitPath(r.rest), name]) }
    if (r.node.kind !== 'dir') throw new HerdsError('ENOTDIR', `not a directory: ${joinPath(parts.slice(0, -1))}`)
    // A union directory with a mkdir (rmdir) of its own makes (removes) its names itself (the host's ports/).
    const ownOp = own !== undefined && r.node[own] !== undefined
    if (r.node.union && !ownOp && !Object.hasOwn(r.node.entries ?? {}, name) && !(r.node.lookup && await r.node.lookup(name))) return { target: { tree: unionTree(r.node) }, name, rest: '/' + name }
    return { target: r.node, name, rest: '' }
  }
}

/** The tree merged under a union directory, or the error that stands for it. */
function unionTree (dir: SynthDir): Tree {
  const union = dir.union!()
  if (union instanceof HerdsError) throw union
  return union
}

/** A read-only file whose content is computed when it is opened (a consistent snapshot per open). */
export function textFile (content: string | (() => Promise<string | Uint8Array> | string | Uint8Array)): SynthFile {
  const bytes = async (): Promise<Buffer> => {
    const value = typeof content === 'string' ? content : await content()
    return typeof value === 'string' ? Buffer.from(value) : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  }
  return {
    kind: 'file',
    mode: 0o444,
    // Computed content reports size 0, as /proc does: a size read before the
    // open could be stale by the time of the read and cut a reader short.
    size: typeof content === 'string' ? () => Buffer.byteLength(content) : undefined,
    open: async () => {
      const snapshot = await bytes()
      return { read: (offset, length) => snapshot.subarray(offset, offset + length) }
    },
  }
}

/** A JSON file computed when opened. */
export function jsonFile (value: () => Promise<unknown> | unknown): SynthFile {
  return textFile(async () => JSON.stringify(await value(), null, 2) + '\n')
}

/**
 * A file that acts when written: writes are gathered (up to `maxBytes`) and
 * `commit` runs when the writer closes it. Shells ignore close(2)'s error, so
 * what can be refused earlier is: `check` runs when the file is opened for
 * writing, `validate` on what has been written so far at each write.
 */
export function actionFile (opts: {
  commit: (data: Buffer) => Promise<void> | void
  read?: () => Promise<string> | string
  check?: () => void
  validate?: (soFar: Buffer) => void
  /** O_TRUNC or truncate(1): what emptying the file means (default: nothing). */
  truncate?: () => Promise<void> | void
  /** Told of every refusal, for an `error` file. */
  onRefuse?: (err: HerdsError) => void
  maxBytes: number
}): SynthFile {
  const refusing = <T>(work: () => T): T => {
    try {
      const result = work()
      if (result instanceof Promise) return result.catch((err) => { throw noted(err) }) as T
      return result
    } catch (err) {
      throw noted(err)
    }
  }
  const noted = (err: unknown): HerdsError => {
    const error = toHerdsError(err)
    opts.onRefuse?.(error)
    return error
  }
  return {
    kind: 'file',
    mode: opts.read ? 0o666 : 0o222,
    truncate: opts.truncate,
    open: async (flags) => {
      if (wantsWrite(flags)) refusing(() => opts.check?.())
      const snapshot = opts.read && (flags & O_ACCMODE) !== O_WRONLY ? Buffer.from(await opts.read()) : Buffer.alloc(0)
      let chunks: Buffer[] = []
      let size = 0
      // Once a write is refused, what was written is never acted on: a command
      // cut at the size limit, or missing a refused part, must not run.
      let refused: HerdsError | undefined
      // Every close(2) flushes, a forked child's too; what was written by then is
      // acted on, and a later write is refused where the writer sees it.
      let spent = false
      return {
        read: (offset, length) => snapshot.subarray(offset, offset + length),
        write: (_offset, data) => {
          // Appends whatever the offset: a command is a stream of bytes, not a seekable file.
          const piece = Buffer.from(data) // the caller's buffer may be reused once we return
          try {
            if (refused) throw refused
            if (spent) throw new HerdsError('EBUSY', 'already acted on when a copy of this file was closed; write it in one go, or open it again')
            if (size + data.length > opts.maxBytes) throw new HerdsError('EFBIG', `too long: at most ${opts.maxBytes} bytes`)
            opts.validate?.(Buffer.concat([...chunks, piece]))
          } catch (err) {
            refused = noted(err)
            throw refused
          }
          chunks.push(piece)
          size += data.length
          return data.length
        },
        flush: async () => {
          if (refused) throw refused
          if (size === 0) return
          const data = Buffer.concat(chunks)
          chunks = []
          size = 0
          spent = true
          await refusing(() => opts.commit(data))
        },
      }
    },
  }
}
