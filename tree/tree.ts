/**
 * The Tree: the one interface every part of Herds serves and consumes (DESIGN §1).
 * Paths are absolute within the tree ("/", "/exec/cmd"), already normalised.
 * Every method rejects with a HerdsError carrying an errno name.
 */
import { childOf } from './paths.js'

/** File type bits, as in stat(2). */
export const S_IFMT = 0o170000
export const S_IFDIR = 0o040000
export const S_IFREG = 0o100000
export const S_IFLNK = 0o120000
export const S_IFIFO = 0o010000
export const S_IFSOCK = 0o140000

/** rename's flags, with Linux's values on the wire (the FUSE adapter translates the platform's). */
export const RENAME_NOREPLACE = 1
export const RENAME_EXCHANGE = 2

/** setxattr's flags, as on Linux and macOS. */
export const XATTR_CREATE = 1
export const XATTR_REPLACE = 2

/**
 * The operations on an open file, whose second argument is its handle: each
 * layer that numbers handles of its own translates every one of these.
 */
export const HANDLE_OPS: ReadonlySet<Op> = new Set<Op>(['read', 'write', 'flush', 'release', 'fsync', 'getlk', 'setlk', 'flock'])

/** A record lock's kind (fcntl F_RDLCK, F_WRLCK, F_UNLCK). */
export type LockType = 'read' | 'write' | 'unlock'

/** A record lock that is in the way (getlk): over [start, start + length), length 0 to the end; pid 0 when not known. */
export interface FileLock { type: 'read' | 'write', start: number, length: number, pid: number }

/** flock(2)'s operations. */
export type FlockOp = 'shared' | 'exclusive' | 'unlock'

/** What getattr returns; times are milliseconds since the epoch, with a fraction (nanoseconds, as far as a double carries them). */
export interface Stat {
  mode: number
  size: number
  mtimeMs: number
  atimeMs: number
  ctimeMs: number
  nlink: number
  /** 512-byte blocks the file takes on the node's disk (real files); absent: size / 512. */
  blocks?: number
  /**
   * The node's own inode number (real files; absent for synthetic ones), so
   * hard links show as one file. A Number: exact below 2^53, which every
   * file system Herds runs on stays under.
   */
  ino?: number
  /**
   * The nanoseconds within the second of each time, exactly, where the tree
   * knows them (a time in ms as a double keeps only about 0.24 µs); see timeOf.
   */
  atimeNsec?: number
  mtimeNsec?: number
  ctimeNsec?: number
}

/** A time to set, exactly: seconds since the epoch and the nanoseconds within that second. */
export interface TimeSpec { sec: number, nsec: number }

/** A time in ms (with a fraction) as a TimeSpec, as exact as the double is. */
export function timeFromMs (ms: number): TimeSpec {
  const sec = Math.floor(ms / 1000)
  return { sec, nsec: Math.min(999_999_999, Math.max(0, Math.round((ms - sec * 1000) * 1e6))) }
}

/** One of a Stat's times exactly: its nanoseconds when given (the seconds then from the ms, rounded to agree). */
export function timeOf (stat: Stat, which: 'atime' | 'mtime' | 'ctime'): TimeSpec {
  const ms = stat[`${which}Ms`]
  const nsec = stat[`${which}Nsec`]
  if (nsec === undefined) return timeFromMs(ms)
  return { sec: Math.round((ms - nsec / 1e6) / 1000), nsec }
}

/** A TimeSpec in ms (with a fraction), for the places a double is enough. */
export function msOf (time: TimeSpec): number {
  return time.sec * 1000 + time.nsec / 1e6
}

export interface Statfs {
  bsize: number
  blocks: number
  bfree: number
  bavail: number
  files: number
  ffree: number
  namemax: number
}

/** What create answers: the new file's handle, and its attributes (null: not known, ask getattr). */
export interface Created { fh: number, stat: Stat | null }

/** The handle an open (a number) or a create (a Created) answered with: for wrappers that handle both alike. */
export function handleOf (opened: number | Created): number {
  return typeof opened === 'number' ? opened : opened.fh
}

/** A name in a folder, with its attributes (null: not known, ask getattr). */
export type DirEntry = [name: string, stat: Stat | null]

/** The most names readdirplus gives attributes for; those past it come with null. */
export const MAX_DIRPLUS = 50_000

/** The same entries with each known stat changed by `change` (given the entry's path): for trees that adjust what getattr says. */
export function mapEntryStats (dir: string, entries: DirEntry[], change: (stat: Stat, path: string) => Stat | null): DirEntry[] {
  return entries.map(([name, stat]) => [name, stat && change(stat, childOf(dir, name))])
}

/**
 * Per-call context. `signal` aborts a call whose caller went away (a cancelled
 * request, a closed connection), so blocking reads never outlive their reader.
 * `session` names the connection the call came through (set by trackHandles),
 * so what belongs to one session (a new token's secret) is given to no other.
 */
export interface CallContext {
  signal?: AbortSignal
  session?: string
}

export interface Tree {
  getattr (path: string, ctx?: CallContext): Promise<Stat>
  readdir (path: string, ctx?: CallContext): Promise<string[]>
  /**
   * The folder's names, each with its attributes as getattr gives them, in one
   * call (so a listing costs one round trip, not one per name); null where they
   * are not known (gone meanwhile, or past MAX_DIRPLUS): ask getattr for those.
   */
  readdirplus (path: string, ctx?: CallContext): Promise<DirEntry[]>
  /** Opens a file; returns a handle number (> 0) for read/write/flush/release. */
  open (path: string, flags: number, ctx?: CallContext): Promise<number>
  /** Reads up to `length` bytes at `offset`; an empty buffer means end of file. */
  read (path: string, fh: number, offset: number, length: number, ctx?: CallContext): Promise<Uint8Array>
  /** Writes `data` at `offset`; returns the number of bytes taken. */
  write (path: string, fh: number, offset: number, data: Uint8Array, ctx?: CallContext): Promise<number>
  /** Sets the size; like utimens and chmod, may return the file's attributes after the change (so no getattr need follow). */
  truncate (path: string, size: number, ctx?: CallContext): Promise<Stat | void>
  /** Called on every close(2) of a descriptor; its error is close(2)'s error. */
  flush (path: string, fh: number, ctx?: CallContext): Promise<void>
  /** Called once when the last descriptor of a handle is gone. */
  release (path: string, fh: number, ctx?: CallContext): Promise<void>
  /** Creates and opens a regular file; answers with its handle and, where the tree knows them, its attributes (so no getattr need follow). */
  create (path: string, mode: number, ctx?: CallContext): Promise<Created>
  mkdir (path: string, mode: number, ctx?: CallContext): Promise<void>
  unlink (path: string, ctx?: CallContext): Promise<void>
  rmdir (path: string, ctx?: CallContext): Promise<void>
  /**
   * Renames `from` to `to`. `flags`: RENAME_NOREPLACE (EEXIST if `to` is
   * there) or RENAME_EXCHANGE (swaps the two names; both must exist), each
   * atomic on the node; 0 or absent: replaces `to`.
   */
  rename (from: string, to: string, flags?: number, ctx?: CallContext): Promise<void>
  /** Makes `to` a hard link to the file `from`, within one tree (EXDEV across trees). */
  link (from: string, to: string, ctx?: CallContext): Promise<void>
  /** Makes `path` a symbolic link whose content is `target`. */
  symlink (target: string, path: string, ctx?: CallContext): Promise<void>
  readlink (path: string, ctx?: CallContext): Promise<string>
  /** Sets the access and modification times exactly; null leaves that one as it is (UTIME_OMIT). */
  utimens (path: string, atime: TimeSpec | null, mtime: TimeSpec | null, ctx?: CallContext): Promise<Stat | void>
  chmod (path: string, mode: number, ctx?: CallContext): Promise<Stat | void>
  statfs (path: string, ctx?: CallContext): Promise<Statfs>
  /** Makes a fifo or a socket (`mode` carries S_IFIFO or S_IFSOCK and the permission bits); devices are EPERM. */
  mknod (path: string, mode: number, ctx?: CallContext): Promise<void>
  /** Writes what an open file holds to the node's disk (`datasync`: its data, not all its attributes). */
  fsync (path: string, fh: number, datasync: boolean, ctx?: CallContext): Promise<void>
  /** An extended attribute's value (ENODATA if it has none by that name). */
  getxattr (path: string, name: string, ctx?: CallContext): Promise<Uint8Array>
  /** Sets an extended attribute; `flags`: XATTR_CREATE, XATTR_REPLACE or 0. */
  setxattr (path: string, name: string, value: Uint8Array, flags: number, ctx?: CallContext): Promise<void>
  listxattr (path: string, ctx?: CallContext): Promise<string[]>
  removexattr (path: string, name: string, ctx?: CallContext): Promise<void>
  /**
   * The record lock (fcntl) that would keep `owner` from taking `type` over
   * the range of the file open as `fh`, or null. An owner is a process of the
   * mount, named uniquely across mounts; its locks meet every other owner's
   * and the node's own processes'.
   */
  getlk (path: string, fh: number, owner: string, type: LockType, start: number, length: number, ctx?: CallContext): Promise<FileLock | null>
  /** Takes, changes or (type unlock) drops `owner`'s record lock; EAGAIN if another is in the way, unless `wait`. */
  setlk (path: string, fh: number, owner: string, type: LockType, start: number, length: number, wait: boolean, ctx?: CallContext): Promise<void>
  /** flock(2) on the file open as `fh`: its description holds the lock; EAGAIN if held elsewhere, unless `wait`. */
  flock (path: string, fh: number, op: FlockOp, wait: boolean, ctx?: CallContext): Promise<void>
}

/** The operation names of the Tree interface. */
export type Op = keyof Tree

/** Builds a Stat with sensible defaults, for synthetic files and directories. */
export function makeStat (mode: number, size = 0, timeMs = Date.now()): Stat {
  return { mode, size, mtimeMs: timeMs, atimeMs: timeMs, ctimeMs: timeMs, nlink: (mode & S_IFMT) === S_IFDIR ? 2 : 1 }
}

/**
 * Open flags on the wire: the access mode (the same on every OS) and O_APPEND
 * with Linux's value; the FUSE adapter translates the platform's own flags.
 */
export const O_ACCMODE = 3
export const O_RDONLY = 0
export const O_WRONLY = 1
export const O_RDWR = 2
export const O_APPEND = 0o2000

/** Does this open(2) flag set ask for writing? */
export function wantsWrite (flags: number): boolean {
  return (flags & O_ACCMODE) !== O_RDONLY
}
