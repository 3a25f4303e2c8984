/**
 * A local tree: a real directory served through the Tree interface. No path
 * escapes its root: ".." never reaches here (the wire refuses it), and every
 * operation acts in a parent folder opened beneath the root (tree/beneath.ts),
 * so what was checked is what is used, however the folders change meanwhile.
 * The last name is never followed if it is a symbolic link.
 */
import { constants, type BigIntStats } from 'node:fs'
import { chmod, link, lstat, lutimes, mkdir, open, readdir, readlink, rename, rmdir, stat, statfs, symlink, unlink, utimes, type FileHandle } from 'node:fs/promises'
import { Beneath, DESCRIPTOR_RELATIVE, O_PATH, type Place } from './beneath.js'
import { HerdsError, toHerdsError } from './errno.js'
import { HandleTable } from './handles.js'
import { splitPath } from './paths.js'
import { getXattrAt, hasFileCalls, listXattrAt, mknodAt, removeXattrAt, renameAt, setXattrAt, utimensAt } from './native.js'
import { flockHandle, released, setLock, testLock } from './locks.js'
import { MAX_DIRPLUS, O_ACCMODE, O_APPEND, S_IFIFO, S_IFMT, S_IFSOCK, msOf, timeOf, type CallContext, type Created, type DirEntry, type FileLock, type FlockOp, type LockType, type Stat, type Statfs, type TimeSpec, type Tree } from './tree.js'
import { XATTR_NAME_MAX, XATTR_SIZE_MAX } from './wire.js'

/** Turns Node's fs errors into HerdsErrors that name the tree path, not the node's disk path. */
async function guard<T> (path: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (err) {
    if (err instanceof HerdsError) throw err // ours already name the tree path
    throw new HerdsError(toHerdsError(err).code, `${toHerdsError(err).code}: ${path}`)
  }
}

/** The node's stat as the Tree's: times from nanoseconds (as exact as a double in ms allows), and the inode number. */
function toStat (s: BigIntStats): Stat {
  const ms = (ns: bigint): number => Number(ns / 1_000_000n) + Number(ns % 1_000_000n) / 1e6
  // Times before 1970 are negative: the nanoseconds within the second stay 0 to 999,999,999.
  const nsec = (ns: bigint): number => Number(((ns % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n)
  return {
    mode: Number(s.mode), size: Number(s.size), mtimeMs: ms(s.mtimeNs), atimeMs: ms(s.atimeNs), ctimeMs: ms(s.ctimeNs),
    nlink: Number(s.nlink), blocks: Number(s.blocks), ino: Number(s.ino),
    atimeNsec: nsec(s.atimeNs), mtimeNsec: nsec(s.mtimeNs), ctimeNsec: nsec(s.ctimeNs),
  }
}

/** What an operation on one name is handed: the folder it lies in, opened beneath the root, and its place there. */
interface Entry {
  place: Place
  /** The entry's own path to act on (for the root: the root itself, which is then followed). */
  at: string
  /** Is this the root of the tree (no name of its own)? */
  root: boolean
}

export interface LocalTreeOptions {
  /**
   * Does a link at `path` that leads out of the tree show its target? A link
   * is followed by the mount's own kernel, on the mount's machine: one that a
   * sandbox job planted could lead a user's `rm dir/*` or `mv dir/* .` to the
   * user's own files. So where sandbox jobs write, such links are neither made
   * nor shown (EPERM, EACCES); elsewhere they are, as on a disk. Default: shown.
   */
  linksOut?: (path: string) => boolean
  /** Resolve paths with openat2 where the kernel has it (default), or always name by name (tests of that fallback). */
  kernelWalk?: boolean
}

export class LocalTree implements Tree {
  private readonly beneath: Beneath
  private readonly files = new HandleTable<FileHandle>()
  /** Each open file's writes and syncs, one at a time in the order they came (see `inTurn`). */
  private readonly turns = new WeakMap<FileHandle, Promise<unknown>>()
  private readonly linksOut: (path: string) => boolean

  /** Serves the directory `root`, which must exist. */
  constructor (root: string, opts: LocalTreeOptions = {}) {
    this.beneath = new Beneath(root, { kernelWalk: opts.kernelWalk })
    this.linksOut = opts.linksOut ?? (() => true)
  }

  /** Runs `work` on the entry at `path`, in its parent folder opened beneath the root; errors name the tree path. */
  private entry<T> (path: string, work: (entry: Entry) => Promise<T>): Promise<T> {
    return guard(path, async () => {
      const parts = splitPath(path)
      const root = parts.length === 0
      const place = root ? await this.beneath.directory(parts, path) : await this.beneath.parent(parts, path)
      try {
        return await work({ place, at: root ? place.dir : place.at(parts.at(-1)!), root })
      } finally {
        await place.close()
      }
    })
  }

  /** Runs `work` in the directory at `path` itself (links inside the root followed). */
  private inDirectory<T> (path: string, work: (place: Place) => Promise<T>): Promise<T> {
    return guard(path, async () => {
      const place = await this.beneath.directory(splitPath(path), path)
      try { return await work(place) } finally { await place.close() }
    })
  }

  private file (fh: number): FileHandle {
    return this.files.must(fh)
  }

  /**
   * Runs `work` once the file's earlier writes and syncs are done. A mount sends
   * writes without waiting for answers; run side by side in the thread pool, two
   * that overlap could land in the wrong order, and on a full disk a later one
   * could land past one that failed, leaving a hole.
   */
  private inTurn<T> (file: FileHandle, work: (file: FileHandle) => Promise<T>): Promise<T> {
    const run = (): Promise<T> => work(file)
    const turn = (this.turns.get(file) ?? Promise.resolve()).then(run, run)
    this.turns.set(file, turn.catch(() => {}))
    return turn
  }

  /**
   * Opens a regular file inside the root, never through a link. O_NONBLOCK
   * keeps a FIFO from tying up a thread; what was opened is checked to be a
   * regular file.
   */
  private openFile (path: string, flags: number, mode?: number): Promise<FileHandle> {
    return this.entry(path, async ({ at, root }) => {
      if (root) throw new HerdsError('EISDIR', `not a regular file: ${path}`)
      const before = await lstat(at).catch(() => undefined)
      if (before?.isSymbolicLink()) throw new HerdsError('ELOOP', `a symbolic link is never opened on the node: ${path}`)
      if (before && !before.isFile()) throw new HerdsError(before.isDirectory() ? 'EISDIR' : 'EACCES', `not a regular file: ${path}`)
      const file = await open(at, flags | constants.O_NOFOLLOW | constants.O_NONBLOCK, mode)
      try {
        if (!(await file.stat()).isFile()) throw new HerdsError('EACCES', `not a regular file: ${path}`)
        return file
      } catch (err) {
        await file.close()
        throw err
      }
    })
  }

  private async openAt (path: string, flags: number, mode?: number): Promise<number> {
    return this.files.add(await this.openFile(path, flags, mode))
  }

  getattr (path: string): Promise<Stat> {
    // The root is named by its open descriptor, which stat follows to the folder itself.
    return this.entry(path, async ({ at, root }) => statOf(at, root))
  }

  readdir (path: string): Promise<string[]> {
    return this.inDirectory(path, (place) => readdir(place.dir))
  }

  /** The names, each stat'ed in the folder's own descriptor (links not followed), as getattr of each would. */
  readdirplus (path: string): Promise<DirEntry[]> {
    return this.inDirectory(path, async (place) => {
      const names = await readdir(place.dir)
      const entries: DirEntry[] = names.map((name) => [name, null])
      // A few hundred at a time: the thread pool takes four anyway, and a huge folder must not queue 50,000 at once.
      for (let start = 0; start < Math.min(names.length, MAX_DIRPLUS); start += 256) {
        await Promise.all(entries.slice(start, Math.min(start + 256, MAX_DIRPLUS)).map(async (entry) => {
          entry[1] = await lstat(place.at(entry[0]), { bigint: true }).then(toStat, () => null)
        }))
      }
      return entries
    })
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
    return guard(path, () => this.inTurn(this.file(fh), async (file) => (await file.write(data, 0, data.length, offset)).bytesWritten))
  }

  async flush (): Promise<void> {
    // Writes go straight to the file; nothing is held back to flush.
  }

  async release (path: string, fh: number): Promise<void> {
    const file = this.files.take(fh)
    if (file) released(file)
    await guard(path, async () => file?.close())
  }

  getlk (path: string, fh: number, owner: string, type: LockType, start: number, length: number): Promise<FileLock | null> {
    return guard(path, () => testLock(this.file(fh), owner, type, start, length))
  }

  setlk (path: string, fh: number, owner: string, type: LockType, start: number, length: number, wait: boolean, ctx?: CallContext): Promise<void> {
    return guard(path, () => setLock(this.file(fh), owner, type, start, length, wait, ctx?.signal))
  }

  flock (path: string, fh: number, op: FlockOp, wait: boolean, ctx?: CallContext): Promise<void> {
    return guard(path, () => flockHandle(this.file(fh), op, wait, ctx?.signal))
  }

  truncate (path: string, size: number): Promise<Stat> {
    return guard(path, async () => {
      const file = await this.openFile(path, constants.O_WRONLY)
      try {
        await file.truncate(size)
        return toStat(await file.stat({ bigint: true }))
      } finally {
        await file.close()
      }
    })
  }

  /**
   * Creates a regular file, or opens the one another client made a moment
   * before: the kernel asks for a create only after it found no such name, so
   * two mounts appending to a new log at once must both succeed. (O_EXCL is not
   * on the wire: fuse-native hands create no flags.)
   */
  create (path: string, mode: number): Promise<Created> {
    return guard(path, async () => {
      const made = await this.makeFile(path, mode & 0o7777).catch((err: unknown) => {
        if (toHerdsError(err).code === 'EEXIST') return undefined
        throw err
      })
      if (!made) return { fh: await this.openAt(path, constants.O_RDWR), stat: null }
      try {
        // The mode as given: the mount's kernel applied the caller's umask already, and the node's must not apply again.
        if ((mode & 0o7777 & currentUmask()) !== 0) await made.chmod(mode & 0o7777).catch(() => {})
        // The attributes of what was made, so the mount need not ask for them (fstat: no path resolved again).
        const stat = toStat(await made.stat({ bigint: true }))
        return { fh: this.files.add(made), stat }
      } catch (err) {
        await made.close()
        throw err
      }
    })
  }

  /**
   * Makes a new regular file inside the root and opens it. O_EXCL with
   * O_NOFOLLOW refuses whatever is there already (a link, a folder, a fifo:
   * EEXIST), so what opens is the file just made and needs no check.
   */
  private makeFile (path: string, mode: number): Promise<FileHandle> {
    return this.entry(path, async ({ at, root }) => {
      if (root) throw new HerdsError('EISDIR', `not a regular file: ${path}`)
      return open(at, constants.O_CREAT | constants.O_EXCL | constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK, mode)
    })
  }

  async mkdir (path: string, mode: number): Promise<void> {
    await this.entry(path, async ({ at, root }) => {
      if (root) throw new HerdsError('EEXIST', `the root of a tree exists: ${path}`)
      await mkdir(at, mode & 0o7777)
    })
    // As for create: the mode as given, not narrowed by the node's umask (chmod acts on the entry itself, never a link).
    if ((mode & 0o7777 & currentUmask()) !== 0) await this.chmod(path, mode)
  }

  /** A hard link inside the tree: both names resolved beneath the root; `from` itself is never followed. */
  link (from: string, to: string): Promise<void> {
    return this.entry(from, (source) => this.entry(to, async (target) => {
      if (source.root || target.root) throw new HerdsError('EPERM', 'the root of a tree cannot be linked')
      await link(source.at, target.at)
    }))
  }

  unlink (path: string): Promise<void> {
    return this.entry(path, async ({ at, root }) => {
      if (root) throw new HerdsError('EISDIR', 'the root of a tree is a folder')
      await unlink(at)
    })
  }

  rmdir (path: string): Promise<void> {
    return this.entry(path, async ({ at, root }) => {
      if (root) throw new HerdsError('EBUSY', 'the root of a tree cannot be removed')
      await rmdir(at)
    })
  }

  /** Renames within the tree; with flags (no replace, exchange) through renameat2, atomic on the node. */
  rename (from: string, to: string, flags = 0): Promise<void> {
    return this.entry(from, (source) => this.entry(to, async (target) => {
      if (source.root || target.root) throw new HerdsError('EBUSY', 'the root of a tree cannot be renamed or replaced')
      if (flags === 0) await rename(source.at, target.at)
      else await renameAt(source.at, target.at, flags)
    }))
  }

  /** Makes a fifo or a socket; a device is never made (EPERM), whoever the node runs as. */
  async mknod (path: string, mode: number): Promise<void> {
    const type = mode & S_IFMT
    if (type !== S_IFIFO && type !== S_IFSOCK) throw new HerdsError('EPERM', `only fifos and sockets can be made with mknod here, not devices: ${path}`)
    await this.entry(path, async ({ at, root }) => {
      if (root) throw new HerdsError('EEXIST', `the root of a tree exists: ${path}`)
      await mknodAt(at, type | (mode & 0o7777))
    })
    if ((mode & 0o7777 & currentUmask()) !== 0) await this.chmod(path, mode)
  }

  /** Writes the open file's data (and, unless `datasync`, its attributes) to the node's disk. */
  fsync (path: string, fh: number, datasync: boolean): Promise<void> {
    return guard(path, () => this.inTurn(this.file(fh), (file) => datasync ? file.datasync() : file.sync()))
  }

  getxattr (path: string, name: string): Promise<Uint8Array> {
    return this.onAttributes(path, name, async (at) => await getXattrAt(at, name, XATTR_SIZE_MAX) as Buffer)
  }

  setxattr (path: string, name: string, value: Uint8Array, flags: number): Promise<void> {
    if (value.byteLength > XATTR_SIZE_MAX) return Promise.reject(new HerdsError('E2BIG', `an attribute's value is at most ${XATTR_SIZE_MAX} bytes: ${path}`))
    return this.onAttributes(path, name, (at) => setXattrAt(at, name, Buffer.from(value.buffer, value.byteOffset, value.byteLength), flags))
  }

  removexattr (path: string, name: string): Promise<void> {
    return this.onAttributes(path, name, (at) => removeXattrAt(at, name))
  }

  /** The attribute names a user may see here (on Linux: the user. ones). */
  listxattr (path: string): Promise<string[]> {
    return this.onAttributes(path, undefined, async (at) => {
      const list = await listXattrAt(at, XATTR_SIZE_MAX) as Buffer
      return list.toString('utf8').split('\0').filter((name) => name !== '' && userAttribute(name))
    })
  }

  /**
   * Runs an attribute call on the entry at `path`, never following it. On
   * Linux only user.* attributes pass: trusted.* and security.* (file
   * capabilities, SELinux labels) would let a mount user grant powers on the
   * node, which runs jobs.
   */
  private onAttributes<T> (path: string, name: string | undefined, work: (at: string) => Promise<T>): Promise<T> {
    if (name !== undefined && Buffer.byteLength(name) > XATTR_NAME_MAX) return Promise.reject(new HerdsError('ERANGE', `an attribute's name is at most ${XATTR_NAME_MAX} bytes: ${path}`))
    if (name !== undefined && !userAttribute(name)) return Promise.reject(new HerdsError('ENOTSUP', `only user.* extended attributes are kept on this node, not ${name}`))
    // The root is named by its open descriptor; "/." is the folder itself, not the /proc link.
    return this.entry(path, ({ at, root }) => work(root ? `${at}/.` : at))
  }

  /**
   * Makes a link with any target, as a disk would: a link is only a string,
   * which the mount's kernel resolves on its own side. The node itself never
   * follows one out of the tree (see Beneath).
   */
  symlink (target: string, path: string): Promise<void> {
    if (!staysInside(path, target) && !this.linksOut(path)) {
      return Promise.reject(new HerdsError('EPERM', `a link here may only point inside this tree (relative, no way out), because sandbox jobs write here: ${target}`))
    }
    return this.entry(path, async ({ at, root }) => {
      if (root) throw new HerdsError('EEXIST', `the root of a tree exists: ${path}`)
      await symlink(target, at)
    })
  }

  readlink (path: string): Promise<string> {
    return this.entry(path, async ({ at, root }) => {
      if (root) throw new HerdsError('EINVAL', `not a symbolic link: ${path}`)
      const target = await readlink(at)
      if (!staysInside(path, target) && !this.linksOut(path)) throw new HerdsError('EACCES', `${path} is a link out of a tree that sandbox jobs write; it is not shown`)
      return target
    })
  }

  /** Sets the entry's own times (a link's, not its target's) to the nanosecond; Node's utimes, to about a microsecond, without the addon. */
  utimens (path: string, atime: TimeSpec | null, mtime: TimeSpec | null): Promise<Stat> {
    return this.entry(path, async ({ at, root }) => {
      if (hasFileCalls()) {
        // The root is named by its open descriptor: "/." is the folder itself, not the /proc link.
        await utimensAt(root ? `${at}/.` : at, atime, mtime)
        return statOf(at, root)
      }
      const now = atime && mtime ? undefined : await statOf(at, root)
      const seconds = (time: TimeSpec | null, which: 'atime' | 'mtime'): number => time ? time.sec + time.nsec / 1e9 : msOf(timeOf(now!, which)) / 1000
      await (root ? utimes : lutimes)(at, seconds(atime, 'atime'), seconds(mtime, 'mtime'))
      return statOf(at, root)
    })
  }

  chmod (path: string, mode: number): Promise<Stat> {
    return this.entry(path, async ({ at, root }) => {
      await this.chmodAt(path, at, root, mode)
      return statOf(at, root)
    })
  }

  /** chmod of the entry `at` names, never of where a link leads. */
  private async chmodAt (path: string, at: string, root: boolean, mode: number): Promise<void> {
    if (root) return chmod(at, mode & 0o7777)
    // chmod(2) follows links, and a link's target may lie outside: change the
    // mode through a descriptor that names the entry itself, never followed.
    const file = await open(at, (DESCRIPTOR_RELATIVE ? O_PATH : constants.O_RDONLY | constants.O_NONBLOCK) | constants.O_NOFOLLOW).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ELOOP') throw new HerdsError('ENOTSUP', `cannot chmod a symbolic link: ${path}`)
      if (DESCRIPTOR_RELATIVE) throw err
      return undefined // the fallback, unreadable to us: the path, whose parent was checked
    })
    if (!file) return chmod(at, mode & 0o7777)
    try {
      if ((await file.stat()).isSymbolicLink()) throw new HerdsError('ENOTSUP', `cannot chmod a symbolic link: ${path}`)
      if (DESCRIPTOR_RELATIVE) await chmod(`/proc/self/fd/${file.fd}`, mode & 0o7777)
      else await file.chmod(mode & 0o7777)
    } finally {
      await file.close()
    }
  }

  statfs (path: string): Promise<Statfs> {
    const read = async (place: Place): Promise<Statfs> => {
      const s = await statfs(place.dir)
      return { bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, namemax: 255 }
    }
    return this.inDirectory(path, read).catch(() => this.inDirectory('/', read))
  }
}

/** May this attribute name be read and written through Herds? On Linux the user namespace only; macOS has no privileged ones by name. */
function userAttribute (name: string): boolean {
  return process.platform !== 'linux' || name.startsWith('user.')
}

/** The node process's umask. */
function currentUmask (): number {
  return process.umask()
}

/**
 * Does a link at `path` with this target stay inside the tree, as the kernel
 * would resolve it? Relative only, every ".." first (a ".." after a name could
 * follow another link upward), and no more of them than the link's depth.
 */
function staysInside (path: string, target: string): boolean {
  if (target.startsWith('/')) return false
  const parts = target.split('/').filter((part) => part !== '' && part !== '.')
  const ups = parts.findIndex((part) => part !== '..')
  const leading = ups === -1 ? parts.length : ups
  if (parts.slice(leading).includes('..')) return false
  return leading <= splitPath(path).length - 1
}

/** The attributes of the entry `at` names (the root: the folder its descriptor names), links not followed. */
async function statOf (at: string, root: boolean): Promise<Stat> {
  return toStat(root ? await stat(at, { bigint: true }) : await lstat(at, { bigint: true }))
}
