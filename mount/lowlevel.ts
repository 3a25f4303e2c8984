/**
 * The FUSE adapter over libfuse3's low-level API (our binding, mount/native):
 * a table of handlers, one per kernel request, over the Tree. The kernel
 * names files by inode (mount/inodes.ts keeps the table); it may cache real
 * files' names, attributes and pages for long, because the host's `changed`
 * frames reach it as invalidations; synthetic files are never cached and
 * read with direct_io, so streams and sizes behave. An interrupted request
 * (Ctrl-C, kill) is cancelled on the wire and answered EINTR.
 */
import { randomBytes } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import { constants as fsConstants } from 'node:fs'
import type { Changed } from '../tree/changed.js'
import { errnoNumber, HerdsError, toHerdsError, type Errno } from '../tree/errno.js'
import { O_ACCMODE, O_APPEND, RENAME_EXCHANGE, RENAME_NOREPLACE, S_IFDIR, S_IFIFO, S_IFMT, S_IFREG, S_IFSOCK, timeFromMs, timeOf, type CallContext, type Stat, type TimeSpec, type Tree } from '../tree/tree.js'
import { childOf, isEntryName } from '../tree/paths.js'
import { isRealFile } from './cache.js'
import { Inodes, ROOT, type Inode } from './inodes.js'
import { loadBinding, type Binding, type Session } from './native.js'
import { SHARED_OPTIONS, sharedMode } from './sharing.js'

/** The kernel requests, numbered as in herds_fuse.c's `enum op`. */
const OP = {
  LOOKUP: 0, FORGET: 1, GETATTR: 2, SETATTR: 3, READLINK: 4, MKNOD: 5, MKDIR: 6, UNLINK: 7, RMDIR: 8,
  SYMLINK: 9, RENAME: 10, LINK: 11, OPEN: 12, READ: 13, WRITE: 14, FLUSH: 15, RELEASE: 16, FSYNC: 17,
  OPENDIR: 18, READDIR: 19, RELEASEDIR: 20, FSYNCDIR: 21, STATFS: 22, SETXATTR: 23, GETXATTR: 24,
  LISTXATTR: 25, REMOVEXATTR: 26, CREATE: 27, FALLOCATE: 28, READDIRPLUS: 29, INTERRUPT: 30, EXIT: 31,
  GETLK: 32, SETLK: 33, FLOCK: 34,
} as const

/** Lock types and flock operations as herds_fuse.c numbers them. */
const LOCK_TYPES = ['read', 'write', 'unlock'] as const
const FLOCK_OPS = ['shared', 'exclusive', 'unlock'] as const

/** Bits of replyOpen's flags (herds_fuse.c get_file_info). */
const DIRECT_IO = 1
const KEEP_CACHE = 2
const CACHE_READDIR = 8

/** setattr's to_set bits (fuse_lowlevel.h). */
const SET = { MODE: 1, UID: 2, GID: 4, SIZE: 8, ATIME: 16, MTIME: 32, ATIME_NOW: 128, MTIME_NOW: 256 } as const

/** rename's flags as the kernel sends them: Linux's are the Tree's; macOS's renamex_np RENAME_SWAP and RENAME_EXCL. */
const RENAME_FLAGS: Record<number, number> = process.platform === 'darwin'
  ? { 0: 0, 2: RENAME_EXCHANGE, 4: RENAME_NOREPLACE }
  : { 0: 0, [RENAME_NOREPLACE]: RENAME_NOREPLACE, [RENAME_EXCHANGE]: RENAME_EXCHANGE }

/**
 * The extended attributes that reach the tree: the `user.` namespace on
 * Linux (the kernel asks for security.capability before every write, and the
 * node keeps to user.* anyway; the binding answers getxattr of other names
 * itself on Linux, as ls -l asks each file for two or three); all names on
 * macOS, which has no namespaces.
 */
const isUserAttribute = (name: string): boolean => process.platform === 'darwin' || name.startsWith('user.')

/**
 * How long the kernel keeps a real file's name and attributes (s): long,
 * since every change the node's watch sees reaches it as an invalidation;
 * not forever, in case a watch is lost (the mount's cache uses 5 s).
 */
const REAL_TTL_S = 10

/**
 * How long the kernel keeps the name of a synthetic folder (/nodes,
 * /nodes/<name>, exec/): without it every path walked through the mount asks
 * the host for each of them again. Only the name: its attributes are asked
 * for anew at every stat, so a folder gone meanwhile is ENOENT at once.
 */
const SYNTHETIC_DIR_ENTRY_TTL_S = 1

/** The most bytes one request moves (max_read, max_write; the kernel's limit is 256 pages). */
export const MAX_IO = 1024 * 1024

/** Attributes had from the node this long ago, with no change heard of since, answer the kernel's getattr (and a chown that changes nothing). */
const FRESH_STAT_MS = 100
/** Names checked at once after changes; past it, names are forgotten without asking. */
const MAX_CHECKS = 4096

/** Folders listed at once through one mount (opendir without releasedir). */
const MAX_OPEN_DIRS = 4096

/** A request as the handlers see it. */
interface Request {
  id: number
  n: number[]
  name?: string
  name2?: string
  data?: Buffer
  uid: number
  gid: number
  ctx: CallContext
}

type Handler = (req: Request) => Promise<void>

/** Open flags as the Tree's portable ones (access mode and append). */
function toTreeFlags (flags: number): number {
  return (flags & O_ACCMODE) | (flags & fsConstants.O_APPEND ? O_APPEND : 0)
}

/** The part of a path whose inode numbers come from one file system on a node. */
const ROOT_OF = /^\/nodes\/[^/]+\/(?:(?:volumes|fs)\/[^/]+|sandboxes\/[^/]+\/workspace)/

/**
 * A file's inode number as the mount shows it: the node's own number mixed
 * with the file system it is on (so two nodes' files never look like hard
 * links of each other), below 2^53; the kernel's number where the node gave none.
 */
function inodeNumber (path: string, stat: Stat, nodeid: number): number {
  const root = stat.ino === undefined ? undefined : ROOT_OF.exec(path)?.[0]
  if (root === undefined || stat.ino === undefined) return nodeid
  let h1 = 0x811c9dc5
  let h2 = 0x01000193
  for (const ch of `${root}\0${stat.ino}`) {
    const c = ch.codePointAt(0)!
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) >>> 0
  }
  return (h1 & 0x1fffff) * 2 ** 32 + h2 + 2 ** 32 // never a small number the kernel's own would be
}

export interface LowLevelOptions {
  /** Is this path's kernel cache safe to keep now (no change in the last moment)? Default: yes. */
  settled?: (path: string) => boolean
  /** Is this path's name safe to keep now (it and its folders unchanged in the last moment; names in it may come and go)? Default: yes. */
  nameSettled?: (path: string) => boolean
  /** Subscribes to changes heard from the host (tree/changed.ts), or undefined for everything. */
  onChange?: (listener: (changed: Changed | undefined) => void) => void
  /** Other users of this machine may use the mount, as the modes shown allow (mount/sharing.ts). */
  allowOther?: boolean
}

/** A mounted tree; `unmount` detaches it and resolves when the kernel let go. */
export interface LowLevelMount {
  unmount (): Promise<void>
  /** Resolves when the session ended (unmounted from here or from outside). */
  ended: Promise<void>
}

/** Mounts `tree` at `mountpoint` through the libfuse3 binding (which must load: see loadBinding). */
export function mountLowLevel (tree: Tree, mountpoint: string, opts: LowLevelOptions = {}): LowLevelMount {
  return new Adapter(loadBinding(), tree, mountpoint, opts).mounted
}

class Adapter {
  readonly mounted: LowLevelMount
  private readonly session: Session
  private readonly inodes = new Inodes()
  private readonly pending = new Map<number, AbortController>()
  private readonly dirs = new Map<number, { path: string, names?: string[] }>()
  private nextDir = 1
  private readonly uid = process.getuid?.() ?? 0
  private readonly gid = process.getgid?.() ?? 0
  private readonly notes = new Map<string, () => boolean>()
  private noteTimer?: NodeJS.Timeout
  /** Inodes whose names are being checked after a change, and the chain the checks run on. */
  private readonly checks = new Set<number>()
  private checking: Promise<void> = Promise.resolve()
  private ended = false
  /** Names this mount's lock owners apart from every other mount's on a node. */
  private readonly lockPrefix = randomBytes(8).toString('hex')
  /** The owners holding record locks through each inode, to let go at their close(2). */
  private readonly lockers = new Map<number, Set<string>>()

  constructor (private readonly native: Binding, private readonly tree: Tree, mountpoint: string, private readonly opts: LowLevelOptions) {
    let end!: () => void
    const ended = new Promise<void>((resolve) => { end = resolve })
    const options = ['fsname=herds', 'subtype=herds', ...(opts.allowOther ? SHARED_OPTIONS : [])].join(',')
    this.session = native.mount(mountpoint, options, MAX_IO, MAX_IO, (op, id, n, name, name2, data, uid, gid) => {
      if (op === OP.FORGET) return this.inodes.forget(n[0], n[1])
      if (op === OP.INTERRUPT) return this.pending.get(id)?.abort()
      if (op === OP.EXIT) {
        this.ended = true
        clearTimeout(this.noteTimer)
        native.destroy(this.session)
        return end()
      }
      this.dispatch(op, { id, n, name, name2, data, uid, gid, ctx: {} })
    })
    opts.onChange?.((changed) => this.invalidate(changed ?? { paths: ['/'] }))
    let unmounting: Promise<void> | undefined
    this.mounted = {
      ended,
      unmount: () => {
        unmounting ??= this.detach().then(() => ended)
        return unmounting
      },
    }
  }

  /**
   * Ends the session: its loop thread is woken until it ends, and then the
   * binding closes the device (which ends the connection in every mount
   * namespace, a sandbox job's too) and unmounts.
   */
  private async detach (): Promise<void> {
    if (this.ended) return
    this.native.unmount(this.session)
    while (!this.ended) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      if (!this.ended) this.native.wake(this.session)
    }
  }

  private dispatch (op: number, req: Request): void {
    const handler = this.handlers[op]
    if (!handler) {
      this.native.replyErr(this.session, req.id, errnoNumber('ENOSYS'))
      return
    }
    const controller = new AbortController()
    setMaxListeners(1024, controller.signal) // a readdirplus asks for every entry under one signal
    req.ctx = { signal: controller.signal }
    this.pending.set(req.id, controller)
    handler(req).catch((err: unknown) => {
      // After the session ended, a late answer (whose reply threw "the session is gone") has no one to go to.
      if (this.ended) return
      const code: Errno = controller.signal.aborted ? 'EINTR' : toHerdsError(err).code
      this.native.replyErr(this.session, req.id, errnoNumber(code))
    }).catch(() => {}).finally(() => this.pending.delete(req.id))
  }

  // ---- replies ----

  private attr (path: string, stat: Stat, nodeid: number): Float64Array {
    const { sec: as, nsec: ans } = timeOf(stat, 'atime')
    const { sec: ms, nsec: mns } = timeOf(stat, 'mtime')
    const { sec: cs, nsec: cns } = timeOf(stat, 'ctime')
    const mode = this.opts.allowOther ? sharedMode(path, stat.mode) : stat.mode
    return Float64Array.of(inodeNumber(path, stat, nodeid), mode, stat.nlink, this.uid, this.gid, 0,
      stat.size, stat.blocks ?? Math.ceil(stat.size / 512), as, ans, ms, mns, cs, cns)
  }

  /** How long the kernel may keep what it learns of `path` (s). */
  private ttl (path: string): number {
    return isRealFile(path) && (this.opts.settled?.(path) ?? true) ? REAL_TTL_S : 0
  }

  /**
   * How long the kernel may keep the name `path` (s), whose attributes it keeps `ttl`. A real
   * folder's name is kept long while names come and go in it (its attributes are not), even
   * just after it was made: which folder it names stays the same until the node says it is
   * gone or something else, so a path walked again and again (tar, a build) does not ask for
   * each folder on it. A file's name that itself changed lately is not kept (SQLite's journal
   * comes and goes).
   */
  private entryTtl (path: string, stat: Stat, ttl: number): number {
    if (isRealFile(path)) return (stat.mode & S_IFMT) === S_IFDIR || (this.opts.nameSettled?.(path) ?? true) ? REAL_TTL_S : ttl
    return ttl === 0 && (stat.mode & S_IFMT) === S_IFDIR ? SYNTHETIC_DIR_ENTRY_TTL_S : ttl
  }

  /**
   * Looks up `name` in `parent` on the tree (unless `known`: the attributes a create just
   * answered with) and answers with its entry, counting the kernel's lookup.
   */
  private async replyEntry (req: Request, parent: number, name: string, open?: { fh: number, flags: number }, known?: Stat | null): Promise<boolean> {
    const path = this.inodes.childPath(parent, name)
    const stat = known ?? await this.tree.getattr(path, req.ctx)
    const node = this.inodes.remember(parent, name)
    node.stat = stat
    node.statAt = Date.now()
    const ttl = this.ttl(path)
    const entry = Float64Array.of(node.id, ttl, this.entryTtl(path, stat, ttl))
    const sent = open
      ? this.native.replyCreate(this.session, req.id, entry, this.attr(path, stat, node.id), open.fh, open.flags)
      : this.native.replyEntry(this.session, req.id, entry, this.attr(path, stat, node.id))
    if (!sent) this.inodes.forget(node.id, 1) // interrupted meanwhile: the kernel never got it
    return sent
  }

  /** Answers with the inode's attributes: `known` when a change just answered with them, else asked for. */
  private async replyAttr (req: Request, nodeid: number, known?: Stat | void | null): Promise<void> {
    const node = this.known(nodeid)
    const path = this.inodes.path(nodeid)
    // A file whose name is gone is known by what it was (fstat on an unlinked file).
    const gone = node.parent === 0 && nodeid !== ROOT && node.stat
    const ask = (): Promise<Stat> => this.tree.getattr(path, req.ctx).catch((err: unknown) => {
      // fstat on an open file whose name is gone (a token's secret, taken at open): what it was.
      if (node.opens && node.stat && toHerdsError(err).code === 'ENOENT') return node.stat
      throw err
    })
    const stat = known || (gone ? { ...node.stat!, nlink: 0 } : this.freshStat(node, path) ?? await ask())
    node.stat = stat
    node.statAt = gone ? undefined : Date.now()
    this.native.replyAttr(this.session, req.id, this.attr(path, stat, nodeid), this.ttl(path))
  }

  /**
   * A real file's attributes as the node gave them under FRESH_STAT_MS ago, with no change heard
   * of since and no write through this mount: the kernel asks again right after a change it
   * was answered with a time-to-live of 0 (tar's fchown after utimensat, fstat after open).
   */
  private freshStat (node: Inode, path: string): Stat | undefined {
    if (node.stat === undefined || node.statAt === undefined || !isRealFile(path)) return undefined
    return Date.now() - node.statAt < FRESH_STAT_MS ? node.stat : undefined
  }

  /** getxattr and listxattr: the size when asked for it (0), ERANGE when it does not fit, else the bytes. */
  private replySized (req: Request, size: number, value: Buffer): void {
    if (size === 0) this.native.replyXattr(this.session, req.id, value.length)
    else if (value.length > size) throw new HerdsError('ERANGE', `the value is ${value.length} bytes, more than the ${size} asked for`)
    else this.native.replyBuf(this.session, req.id, value)
  }

  /** A lock owner as the tree knows it: this mount's prefix and the kernel's 64-bit owner. */
  private lockOwner (hi: number, lo: number): string {
    return `${this.lockPrefix}.${hi.toString(16)}.${lo.toString(16)}`
  }

  /**
   * Answers a lock taken once the kernel has dropped the file's pages: another
   * machine may have written it under the lock just let go, and a read after
   * the lock must see that (SQLite reads its header right after locking).
   */
  private async replyLocked (req: Request, nodeid: number): Promise<void> {
    const node = this.inodes.get(nodeid)
    if (node) node.pages = undefined
    while (!this.native.replyAfterInval(this.session, req.id, nodeid)) await new Promise((resolve) => setTimeout(resolve, 10))
  }

  private ok (req: Request): void {
    this.native.replyErr(this.session, req.id, 0)
  }

  private known (nodeid: number): Inode {
    const node = this.inodes.get(nodeid)
    if (!node) throw new HerdsError('ESTALE', `the mount no longer knows inode ${nodeid}`)
    return node
  }

  /** A name came or went in these folders through this mount: their times changed, so what was had of them is not fresh. */
  private namesChanged (...folders: number[]): void {
    for (const id of folders) {
      const folder = this.inodes.get(id)
      if (folder) folder.statAt = undefined
    }
  }

  /** The path of an inode that still has its name: changes by path must not reach whatever took a removed name. */
  private named (nodeid: number): string {
    const node = this.known(nodeid)
    if (node.parent === 0 && nodeid !== ROOT) throw new HerdsError('ESTALE', 'the file was removed')
    return this.inodes.path(nodeid)
  }

  private readonly handlers: Record<number, Handler> = {
    [OP.LOOKUP]: async (req) => {
      try {
        await this.replyEntry(req, req.n[0], req.name!)
      } catch (err) {
        const path = this.inodes.childPath(req.n[0], req.name!)
        // "No such file", kept by the kernel for a real file: compilers and git ask again and again.
        if (toHerdsError(err).code !== 'ENOENT' || this.ttl(path) === 0) throw err
        this.native.replyEntry(this.session, req.id, Float64Array.of(0, 0, this.ttl(path)), new Float64Array(14))
      }
    },
    [OP.GETATTR]: (req) => this.replyAttr(req, req.n[0]),
    [OP.SETATTR]: async (req) => {
      const [nodeid, , toSet, mode, uid, gid, size] = req.n
      const path = this.named(nodeid)
      // The node answers each change with the attributes after it (a real file's): the last is the reply, with no getattr.
      let after: Stat | void | null = undefined
      if (toSet & SET.MODE) after = await this.tree.chmod(path, mode & 0o7777, req.ctx)
      if (toSet & (SET.UID | SET.GID)) {
        // Every file shows as the mount user's: giving it to that user changes nothing; any other owner is refused.
        if (((toSet & SET.UID) && uid !== this.uid) || ((toSet & SET.GID) && gid !== this.gid)) throw new HerdsError('EPERM', 'files on the mount belong to the mount user')
        // The kernel asks for the attributes just before a chown (to clear set-user-ID bits): if
        // nothing changed since, they are the answer (tar chowns every file it makes).
        if (after === undefined) after = this.freshStat(this.known(nodeid), path)
      }
      if (toSet & SET.SIZE) after = await this.tree.truncate(path, size, req.ctx)
      if (toSet & (SET.ATIME | SET.MTIME | SET.ATIME_NOW | SET.MTIME_NOW)) {
        // [atime s, ns, mtime s, ns], exact; a time not asked for is left as it is on the node (UTIME_OMIT).
        const times = new Float64Array(req.data!.buffer.slice(req.data!.byteOffset, req.data!.byteOffset + 32))
        const now = timeFromMs(Date.now())
        const pick = (set: number, setNow: number, sec: number, nsec: number): TimeSpec | null =>
          toSet & setNow ? now : toSet & set ? { sec, nsec } : null
        after = await this.tree.utimens(path, pick(SET.ATIME, SET.ATIME_NOW, times[0], times[1]), pick(SET.MTIME, SET.MTIME_NOW, times[2], times[3]), req.ctx)
      }
      await this.replyAttr(req, nodeid, after)
    },
    [OP.READLINK]: async (req) => {
      this.native.replyReadlink(this.session, req.id, await this.tree.readlink(this.named(req.n[0]), req.ctx))
    },
    [OP.MKNOD]: async (req) => {
      const [parent, mode] = req.n
      const path = this.inodes.childPath(parent, req.name!)
      const kind = mode & S_IFMT
      if (kind === S_IFIFO || kind === S_IFSOCK) await this.tree.mknod(path, kind | (mode & 0o7777), req.ctx)
      else if (kind === S_IFREG || kind === 0) await this.tree.release(path, (await this.tree.create(path, mode & 0o7777, req.ctx)).fh, req.ctx)
      else throw new HerdsError('EPERM', 'devices cannot be made on the mount')
      this.namesChanged(parent)
      await this.replyEntry(req, parent, req.name!)
    },
    [OP.MKDIR]: async (req) => {
      await this.tree.mkdir(this.inodes.childPath(req.n[0], req.name!), req.n[1] & 0o7777, req.ctx)
      this.namesChanged(req.n[0])
      await this.replyEntry(req, req.n[0], req.name!)
    },
    [OP.UNLINK]: async (req) => {
      const path = this.inodes.childPath(req.n[0], req.name!)
      // An open file about to lose its name is known by what it is now (fstat after unlink); the kernel
      // keeps names long, so what the mount last heard of it may be from before its writes.
      const open = this.inodes.child(req.n[0], req.name!)
      if (open?.opens) open.stat = await this.tree.getattr(path, req.ctx).catch(() => open.stat)
      await this.tree.unlink(path, req.ctx)
      this.namesChanged(req.n[0])
      this.inodes.removed(req.n[0], req.name!)
      this.ok(req)
    },
    [OP.RMDIR]: async (req) => {
      await this.tree.rmdir(this.inodes.childPath(req.n[0], req.name!), req.ctx)
      this.namesChanged(req.n[0])
      this.inodes.removed(req.n[0], req.name!)
      this.ok(req)
    },
    [OP.SYMLINK]: async (req) => {
      await this.tree.symlink(req.name2!, this.inodes.childPath(req.n[0], req.name!), req.ctx)
      this.namesChanged(req.n[0])
      await this.replyEntry(req, req.n[0], req.name!)
    },
    [OP.RENAME]: async (req) => {
      const [parent, newParent, asked] = req.n
      const flags = RENAME_FLAGS[asked]
      if (flags === undefined) throw new HerdsError('EINVAL', `rename flags ${asked} are not known to the mount`)
      await this.tree.rename(this.inodes.childPath(parent, req.name!), this.inodes.childPath(newParent, req.name2!), flags, req.ctx)
      this.namesChanged(parent, newParent)
      if (flags === RENAME_EXCHANGE) this.inodes.exchanged(parent, req.name!, newParent, req.name2!)
      else this.inodes.moved(parent, req.name!, newParent, req.name2!)
      this.ok(req)
    },
    [OP.LINK]: async (req) => {
      const [nodeid, newParent] = req.n
      await this.tree.link(this.named(nodeid), this.inodes.childPath(newParent, req.name!), req.ctx)
      this.namesChanged(newParent, nodeid) // the file's link count changed too
      await this.replyEntry(req, newParent, req.name!)
    },
    [OP.OPEN]: async (req) => {
      const [nodeid, flags] = req.n
      const path = this.named(nodeid)
      const opening = this.tree.open(path, toTreeFlags(flags), req.ctx)
      // Appends land where the node's file ends, which the kernel's pages would not know: such a file skips them.
      // Asked with the open, not after it: both see what was closed before this open began, in one round trip.
      const how = flags & fsConstants.O_APPEND ? Promise.resolve(DIRECT_IO) : this.openFlags(req, nodeid, path)
      how.catch(() => {}) // an open that fails says why; this answer is then not needed
      const fh = await opening
      const node = this.known(nodeid)
      node.opens = (node.opens ?? 0) + 1
      const replied = await how.then((bits) => this.native.replyOpen(this.session, req.id, fh, bits), () => false)
      if (!replied) {
        node.opens--
        await this.tree.release(path, fh).catch(() => {})
        throw new HerdsError('EINTR', 'interrupted')
      }
    },
    [OP.CREATE]: async (req) => {
      const [parent, mode, flags] = req.n
      const path = this.inodes.childPath(parent, req.name!)
      const made = await this.tree.create(path, mode & 0o7777, req.ctx)
      this.namesChanged(parent)
      let fh = made.fh
      try {
        // The Tree's create takes no flags: a new file opened to append is opened again so, or its writes would not append on the node.
        if (flags & fsConstants.O_APPEND) {
          fh = await this.tree.open(path, toTreeFlags(flags), req.ctx)
          await this.tree.release(path, made.fh).catch(() => {})
        }
        if (!await this.replyEntry(req, parent, req.name!, { fh, flags: isRealFile(path) && !(flags & fsConstants.O_APPEND) ? 0 : DIRECT_IO }, made.stat)) throw new HerdsError('EINTR', 'interrupted')
        const node = this.inodes.child(parent, req.name!)
        if (node) node.opens = (node.opens ?? 0) + 1
      } catch (err) {
        await this.tree.release(path, fh).catch(() => {})
        throw err
      }
    },
    [OP.READ]: async (req) => {
      const [nodeid, fh, size, offset] = req.n
      const data = await this.tree.read(this.inodes.path(nodeid), fh, offset, size, req.ctx)
      this.native.replyBuf(this.session, req.id, data.length > size ? data.subarray(0, size) : data)
    },
    [OP.WRITE]: async (req) => {
      const [nodeid, fh, , offset] = req.n
      const node = this.inodes.get(nodeid)
      if (node) node.statAt = undefined
      this.native.replyWrite(this.session, req.id, await this.tree.write(this.inodes.path(nodeid), fh, offset, req.data!, req.ctx))
    },
    [OP.FLUSH]: async (req) => {
      const [nodeid, fh, hi, lo] = req.n
      const path = this.inodes.path(nodeid)
      await this.tree.flush(path, fh, req.ctx)
      // close(2) drops every record lock its process held on the file, as POSIX has it.
      const owner = this.lockOwner(hi, lo)
      const owners = this.lockers.get(nodeid)
      if (owners?.delete(owner)) {
        if (owners.size === 0) this.lockers.delete(nodeid)
        await this.tree.setlk(path, fh, owner, 'unlock', 0, 0, false).catch(() => {})
      }
      this.ok(req)
    },
    [OP.GETLK]: async (req) => {
      const [nodeid, fh, hi, lo, type, start, length] = req.n
      const found = await this.tree.getlk(this.inodes.path(nodeid), fh, this.lockOwner(hi, lo), LOCK_TYPES[type] ?? 'unlock', start, length, req.ctx)
      this.native.replyLock(this.session, req.id, found ? Float64Array.of(found.type === 'read' ? 0 : 1, found.start, found.length, found.pid) : Float64Array.of(2, 0, 0, 0))
    },
    [OP.SETLK]: async (req) => {
      const [nodeid, fh, hi, lo, type, start, length, sleep] = req.n
      const owner = this.lockOwner(hi, lo)
      const kind = LOCK_TYPES[type] ?? 'unlock'
      if (kind !== 'unlock') {
        // Noted before asking: a lock the node took as an interrupt crossed its answer must go at close(2) too.
        let owners = this.lockers.get(nodeid)
        if (!owners) this.lockers.set(nodeid, owners = new Set())
        owners.add(owner)
      }
      await this.tree.setlk(this.inodes.path(nodeid), fh, owner, kind, start, length, Boolean(sleep), req.ctx)
      if (kind === 'unlock') return this.ok(req)
      await this.replyLocked(req, nodeid)
    },
    [OP.FLOCK]: async (req) => {
      const [nodeid, fh, op, wait] = req.n
      const kind = FLOCK_OPS[op] ?? 'unlock'
      await this.tree.flock(this.inodes.path(nodeid), fh, kind, Boolean(wait), req.ctx)
      if (kind === 'unlock') return this.ok(req)
      await this.replyLocked(req, nodeid)
    },
    [OP.RELEASE]: async (req) => {
      const node = this.inodes.get(req.n[0])
      if (node?.opens) node.opens--
      // Not cancellable: the node must let the file go whatever the caller does.
      await this.tree.release(this.inodes.path(req.n[0]), req.n[1]).catch(() => {})
      this.ok(req)
    },
    [OP.FSYNC]: async (req) => {
      await this.tree.fsync(this.inodes.path(req.n[0]), req.n[1], Boolean(req.n[2]), req.ctx)
      this.ok(req)
    },
    [OP.OPENDIR]: async (req) => {
      const path = this.named(req.n[0])
      if (this.dirs.size >= MAX_OPEN_DIRS) throw new HerdsError('EMFILE', `${MAX_OPEN_DIRS} folders are being listed through this mount already`)
      const fh = this.nextDir++
      this.dirs.set(fh, { path }) // listed at the first readdir: a listing the kernel keeps needs none
      // A real folder's listing may stay in the kernel: a change in it invalidates the folder's inode, and so the listing.
      this.native.replyOpen(this.session, req.id, fh, this.ttl(path) > 0 ? CACHE_READDIR | KEEP_CACHE : 0)
    },
    [OP.READDIR]: (req) => this.readdir(req, false),
    [OP.READDIRPLUS]: (req) => this.readdir(req, true),
    [OP.RELEASEDIR]: async (req) => {
      this.dirs.delete(req.n[1])
      this.ok(req)
    },
    [OP.FSYNCDIR]: async (req) => this.ok(req),
    [OP.STATFS]: async (req) => {
      const s = await this.tree.statfs(this.inodes.path(req.n[0]), req.ctx)
      this.native.replyStatfs(this.session, req.id, Float64Array.of(s.bsize, s.bsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.ffree, s.namemax))
    },
    [OP.GETXATTR]: async (req) => {
      // Other namespaces are not kept: "not supported" (the binding says so itself on Linux, before this).
      if (!isUserAttribute(req.name!)) throw new HerdsError('ENOTSUP', `only user.* attributes are kept on the mount, not ${req.name}`)
      this.replySized(req, req.n[1], Buffer.from(await this.tree.getxattr(this.named(req.n[0]), req.name!, req.ctx)))
    },
    [OP.LISTXATTR]: async (req) => {
      const names = await this.tree.listxattr(this.named(req.n[0]), req.ctx)
      this.replySized(req, req.n[1], Buffer.from(names.map((name) => name + '\0').join('')))
    },
    [OP.SETXATTR]: async (req) => {
      if (!isUserAttribute(req.name!)) throw new HerdsError('ENOTSUP', 'only user.* attributes are kept on the mount')
      await this.tree.setxattr(this.named(req.n[0]), req.name!, req.data!, req.n[1], req.ctx)
      this.ok(req)
    },
    [OP.REMOVEXATTR]: async (req) => {
      if (!isUserAttribute(req.name!)) throw new HerdsError('ENOTSUP', 'only user.* attributes are kept on the mount')
      await this.tree.removexattr(this.named(req.n[0]), req.name!, req.ctx)
      this.ok(req)
    },
    [OP.FALLOCATE]: async () => { throw new HerdsError('ENOTSUP', 'the mount cannot reserve space') },
  }

  /**
   * direct_io for synthetic files (they change without anyone writing them);
   * the page cache for real ones, kept when the file is as it was at the last
   * open (mtime and size), so a file read a moment ago is read from memory.
   */
  private async openFlags (req: Request, nodeid: number, path: string): Promise<number> {
    if (!isRealFile(path)) return DIRECT_IO
    const node = this.known(nodeid)
    const stat = await this.tree.getattr(path, req.ctx)
    // The freshest there is: an fstat right after the open is answered with it.
    node.stat = stat
    node.statAt = Date.now()
    const version = `${stat.mtimeMs}:${stat.size}`
    const keep = node.pages === version && this.ttl(path) > 0
    node.pages = version
    return keep ? KEEP_CACHE : 0
  }

  /** Hands over the entries of an opened folder from `offset`, as many as fit; with `plus`, their attributes too. */
  private async readdir (req: Request, plus: boolean): Promise<void> {
    const [nodeid, fh, size, offset] = req.n
    const dir = this.dirs.get(fh)
    if (!dir) throw new HerdsError('EBADF', 'that folder is not open')
    // Listed once per open (offsets then stay true however the folder changes meanwhile); again at a rewind.
    // Only names the kernel could look up again (the wire drops the others too; a tree in-process may not).
    // A real folder's names come with their attributes in one round trip, which the cache keeps for the getattrs below.
    const list = async (): Promise<string[]> => plus && isRealFile(dir.path)
      ? (await this.tree.readdirplus(dir.path, req.ctx)).map(([name]) => name)
      : this.tree.readdir(dir.path, req.ctx)
    if (!dir.names || offset === 0) dir.names = ['.', '..', ...(await list()).filter(isEntryName)]
    const all = dir.names
    // What fits, by the kernel's own sizes: a dirent is 24 bytes and the name, a direntplus 152 and the name, each padded to 8.
    const fits: string[] = []
    for (let i = offset, used = 0; i < all.length; i++) {
      used += Math.ceil(((plus ? 152 : 24) + Buffer.byteLength(all[i])) / 8) * 8
      if (used > size) break
      fits.push(all[i])
    }
    const stats = plus
      ? await Promise.all(fits.map((name) => name === '.' || name === '..' ? undefined : this.tree.getattr(childOf(dir.path, name), req.ctx).catch(() => null)))
      : []
    const names: string[] = []
    const offsets: number[] = []
    const entries: number[] = []
    const attrs: number[] = []
    const counted: Inode[] = []
    fits.forEach((name, i) => {
      const stat = stats[i]
      if (stat === null) return // gone meanwhile
      names.push(name)
      offsets.push(offset + i + 1)
      const dot = name === '.' || name === '..'
      if (!plus || dot || !stat) {
        entries.push(0, 0, 0)
        attrs.push(0xffffffff, dot ? S_IFDIR : 0, ...new Array(12).fill(0))
        counted.push(undefined as never)
        return
      }
      const path = childOf(dir.path, name)
      const node = this.inodes.remember(nodeid, name)
      node.stat = stat
      counted.push(node)
      const ttl = this.ttl(path)
      entries.push(node.id, ttl, this.entryTtl(path, stat, ttl))
      attrs.push(...this.attr(path, stat, node.id))
    })
    const packed = this.native.replyDir(this.session, req.id, size, plus, names, Float64Array.from(offsets), Float64Array.from(entries), Float64Array.from(attrs))
    // Entries the kernel did not get hold no lookup.
    counted.forEach((node, i) => { if (node && i >= Math.max(packed, 0)) this.inodes.forget(node.id, 1) })
  }

  // ---- invalidations: what the host says changed, the kernel forgets ----

  /**
   * The kernel forgets what it kept of what changed: of a path that may differ
   * below (`paths`, `names`), attributes and pages of every inode at or below it
   * at once; of a file whose own attributes or content changed (`attrs`), of
   * that inode alone. A name only once it is gone or is something else now
   * (as `names` says, or as the tree says when asked), because invalidating a
   * folder's name would cut off a process whose working directory is in it
   * (getcwd fails). A name the kernel does not hold may be a "no such file" it
   * keeps: dropped.
   */
  private invalidate (changed: Changed): void {
    if (this.ended) return
    for (const path of changed.paths) this.forgetBelow(path)
    for (const [path, type] of changed.names ?? []) this.forgetBelow(path, type)
    for (const path of changed.attrs ?? []) {
      const node = this.inodes.find(path)
      if (node) this.forgetCached(node)
    }
    this.drainNotes()
  }

  /** Forgets what is kept at and below `path`, and its folder's attributes; `type`: what its name names now, if known. */
  private forgetBelow (path: string, type?: number): void {
    const node = this.inodes.find(path)
    if (node) {
      for (const below of this.inodes.under(path)) {
        this.forgetCached(below)
        if (below.id === ROOT) continue
        if (below !== node || type === undefined) this.checkName(below)
        else if (type === 0 || (node.stat && (node.stat.mode & S_IFMT) !== type)) this.forgetName(node.parent, node.name)
      }
    }
    const slash = path.lastIndexOf('/')
    const parent = path === '/' ? undefined : this.inodes.find(path.slice(0, slash) || '/')
    if (parent) {
      this.forgetCached(parent)
      if (!node) this.forgetName(parent.id, path.slice(slash + 1))
    }
  }

  /** Asks the tree whether an inode's name still stands for what the kernel thinks; if not, the kernel forgets the name. */
  private checkName (node: Inode): void {
    if (node.parent === 0 || this.checks.has(node.id)) return
    if (this.checks.size >= MAX_CHECKS) return void this.forgetName(node.parent, node.name) // too many at once: forget rather than ask
    this.checks.add(node.id)
    const { parent, name } = node
    const kind = node.stat && node.stat.mode & S_IFMT
    this.checking = this.checking.then(async () => {
      // Only a definite "gone" drops the name: a node that is offline for a moment says nothing about it.
      const now = await this.tree.getattr(this.inodes.childPath(parent, name)).then((s) => s.mode & S_IFMT, (err: unknown) => {
        const code = toHerdsError(err).code
        return code === 'ENOENT' || code === 'ENOTDIR' ? undefined : kind
      })
      if (now === undefined || (kind !== undefined && now !== kind)) this.forgetName(parent, name)
    }).catch(() => {}).finally(() => { this.checks.delete(node.id); this.drainNotes() })
  }

  private forgetName (parent: number, name: string): void {
    this.note(`e${parent}/${name}`, () => this.native.notifyEntry(this.session, parent, name))
  }

  private forgetCached (node: Inode): void {
    node.pages = undefined
    node.statAt = undefined
    this.note(`i${node.id}`, () => this.native.notifyInode(this.session, node.id, 0, 0))
  }

  /** Queues an invalidation once; those the binding cannot take yet wait here (at most one per inode or name). */
  private note (key: string, send: () => boolean): void {
    this.notes.delete(key)
    this.notes.set(key, send)
  }

  private drainNotes (): void {
    if (this.ended) return
    for (const [key, send] of this.notes) {
      if (!send()) {
        this.noteTimer ??= setTimeout(() => { this.noteTimer = undefined; this.drainNotes() }, 10)
        return
      }
      this.notes.delete(key)
    }
  }
}
