/**
 * A local tree: a real directory served through the Tree interface. No path
 * escapes its root: ".." never reaches here (the wire refuses it), every parent
 * directory is resolved with realpath and must lie inside the root, and the
 * last name is never followed if it is a symbolic link.
 */
import { constants, type Stats } from 'node:fs'
import { chmod, lstat, lutimes, mkdir, open, readdir, readlink, realpath, rename, rmdir, statfs, symlink, unlink, type FileHandle } from 'node:fs/promises'
import { dirname, join, sep } from 'node:path'
import { HerdsError, toHerdsError } from './errno.js'
import { HandleTable } from './handles.js'
import { splitPath } from './paths.js'
import { O_ACCMODE, O_APPEND, type Stat, type Statfs, type Tree } from './tree.js'

/** Turns Node's fs errors into HerdsErrors that name the tree path, not the node's disk path. */
async function guard<T> (path: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (err) {
    if (err instanceof HerdsError) throw err // ours already name the tree path
    throw new HerdsError(toHerdsError(err).code, `${toHerdsError(err).code}: ${path}`)
  }
}

function toStat (s: Stats): Stat {
  return { mode: s.mode, size: s.size, mtimeMs: s.mtimeMs, atimeMs: s.atimeMs, ctimeMs: s.ctimeMs, nlink: s.nlink }
}

export class LocalTree implements Tree {
  private readonly root: string
  private realRoot = ''
  private readonly files = new HandleTable<FileHandle>()

  /** Serves the directory `root`, which must exist. */
  constructor (root: string) {
    this.root = root
  }

  /** The disk path for a tree path, after checking that its parent lies inside the root. */
  private async inside (path: string): Promise<string> {
    this.realRoot ||= await realpath(this.root)
    const parts = splitPath(path)
    if (parts.length === 0) return this.realRoot
    const parent = await realpath(dirname(join(this.realRoot, ...parts)))
    if (!this.contains(parent)) {
      throw new HerdsError('EACCES', `${path} leads outside its tree through a symbolic link`)
    }
    return join(parent, parts.at(-1)!)
  }

  private file (fh: number): FileHandle {
    return this.files.must(fh)
  }

  /**
   * Opens a regular file inside the root. O_NONBLOCK keeps a FIFO from tying up
   * a thread; after the open, what was opened is checked again (the parent
   * could have been swapped for a link since `inside` looked).
   */
  private async openFile (path: string, flags: number, mode?: number): Promise<FileHandle> {
    const local = await this.inside(path)
    const before = await lstat(local).catch(() => undefined)
    if (before?.isSymbolicLink()) throw new HerdsError('ELOOP', `a symbolic link is never opened on the node: ${path}`)
    if (before && !before.isFile()) throw new HerdsError(before.isDirectory() ? 'EISDIR' : 'EACCES', `not a regular file: ${path}`)
    const file = await open(local, flags | constants.O_NOFOLLOW | constants.O_NONBLOCK, mode)
    try {
      if (!(await file.stat()).isFile()) throw new HerdsError('EACCES', `not a regular file: ${path}`)
      await this.checkOpened(file, path)
      return file
    } catch (err) {
      await file.close()
      throw err
    }
  }

  /** Where an open file really is, where the OS can tell (/proc on Linux). */
  private async checkOpened (file: FileHandle, path: string): Promise<void> {
    if (process.platform !== 'linux') return
    const real = await readlink(`/proc/self/fd/${file.fd}`)
    if (!this.contains(real)) throw new HerdsError('EACCES', `${path} leads outside its tree`)
  }

  private contains (real: string): boolean {
    return real === this.realRoot || real.startsWith(this.realRoot + sep)
  }

  /** The disk path of an existing directory inside the root, links resolved. */
  private async directory (path: string): Promise<string> {
    const real = await realpath(await this.inside(path))
    if (!this.contains(real)) throw new HerdsError('EACCES', `${path} leads outside its tree through a symbolic link`)
    return real
  }

  private async openAt (path: string, flags: number, mode?: number): Promise<number> {
    return this.files.add(await this.openFile(path, flags, mode))
  }

  getattr (path: string): Promise<Stat> {
    return guard(path, async () => toStat(await lstat(await this.inside(path))))
  }

  readdir (path: string): Promise<string[]> {
    return guard(path, async () => readdir(await this.directory(path)))
  }

  open (path: string, flags: number): Promise<number> {
    const local = (flags & O_ACCMODE) | (flags & O_APPEND ? constants.O_APPEND : 0)
    return guard(path, () => this.openAt(path, local))
  }

  read (path: string, fh: number, offset: number, length: number): Promise<Uint8Array> {
    return guard(path, async () => {
      const buf = Buffer.allocUnsafe(length)
      const { bytesRead } = await this.file(fh).read(buf, 0, length, offset)
      return buf.subarray(0, bytesRead)
    })
  }

  write (path: string, fh: number, offset: number, data: Uint8Array): Promise<number> {
    return guard(path, async () => (await this.file(fh).write(data, 0, data.length, offset)).bytesWritten)
  }

  async flush (): Promise<void> {
    // Writes go straight to the file; nothing is held back to flush.
  }

  async release (path: string, fh: number): Promise<void> {
    const file = this.files.take(fh)
    await guard(path, async () => file?.close())
  }

  truncate (path: string, size: number): Promise<void> {
    return guard(path, async () => {
      const file = await this.openFile(path, constants.O_WRONLY)
      try { await file.truncate(size) } finally { await file.close() }
    })
  }

  create (path: string, mode: number): Promise<number> {
    return guard(path, () => this.openAt(path, constants.O_CREAT | constants.O_EXCL | constants.O_RDWR, mode & 0o7777))
  }

  mkdir (path: string, mode: number): Promise<void> {
    return guard(path, async () => { await mkdir(await this.inside(path), mode & 0o7777) })
  }

  unlink (path: string): Promise<void> {
    return guard(path, async () => unlink(await this.inside(path)))
  }

  rmdir (path: string): Promise<void> {
    return guard(path, async () => {
      if (splitPath(path).length === 0) throw new HerdsError('EBUSY', 'the root of a tree cannot be removed')
      await rmdir(await this.inside(path))
    })
  }

  rename (from: string, to: string): Promise<void> {
    return guard(from, async () => rename(await this.inside(from), await this.inside(to)))
  }

  symlink (target: string, path: string): Promise<void> {
    // A mount follows links on its own side: a link that leads out of this tree
    // would show whatever is there (the mount's /etc/passwd). Refuse to make one.
    if (!staysInside(path, target)) return Promise.reject(new HerdsError('EPERM', `a link here may only point inside its tree (relative, no way out): ${target}`))
    return guard(path, async () => symlink(target, await this.inside(path)))
  }

  readlink (path: string): Promise<string> {
    return guard(path, async () => {
      const target = await readlink(await this.inside(path))
      // One made on the node itself may lead out: it is not shown, so it cannot be followed.
      if (!staysInside(path, target)) throw new HerdsError('EACCES', `${path} is a link that leads outside its tree`)
      return target
    })
  }

  utimens (path: string, atimeMs: number, mtimeMs: number): Promise<void> {
    return guard(path, async () => lutimes(await this.inside(path), atimeMs / 1000, mtimeMs / 1000))
  }

  chmod (path: string, mode: number): Promise<void> {
    return guard(path, async () => {
      const local = await this.inside(path)
      // chmod(2) follows links, and a link's target may lie outside: change the
      // mode through a descriptor opened without following, checked where it is.
      const file = await open(local, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ELOOP') throw new HerdsError('ENOTSUP', `cannot chmod a symbolic link: ${path}`)
        return undefined // unreadable to us: fall back to the path, the link check above it holds
      })
      if (!file) return chmod(local, mode & 0o7777)
      try {
        await this.checkOpened(file, path)
        await file.chmod(mode & 0o7777)
      } finally {
        await file.close()
      }
    })
  }

  statfs (path: string): Promise<Statfs> {
    return guard(path, async () => {
      const s = await statfs(await this.directory(path).catch(() => this.realRoot))
      return { bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, namemax: 255 }
    })
  }
}

/**
 * Does a link at `path` with this target stay inside the tree? Relative only,
 * every ".." first (a ".." after a name could follow another link upward, since
 * the kernel resolves links before it applies ".."), and no more of them than
 * the link's depth.
 */
function staysInside (path: string, target: string): boolean {
  if (target.startsWith('/')) return false
  const parts = target.split('/').filter((part) => part !== '' && part !== '.')
  const ups = parts.findIndex((part) => part !== '..')
  const leading = ups === -1 ? parts.length : ups
  if (parts.slice(leading).includes('..')) return false
  return leading <= splitPath(path).length - 1
}
