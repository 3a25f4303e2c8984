/**
 * The FUSE adapter: shows a Tree as a real directory through fuse-native
 * (libfuse 2 on Linux, macFUSE on macOS). Errors become the platform's errno
 * numbers here, at the edge, and nowhere else.
 */
import { execFile } from 'node:child_process'
import { constants as fsConstants, existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdir, readdir, stat } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { promisify } from 'node:util'
import { errnoNumber, HerdsError, toHerdsError } from '../tree/errno.js'
import { O_ACCMODE, O_APPEND, timeFromMs, type Stat, type TimeSpec, type Tree } from '../tree/tree.js'
import { mountLowLevel, type LowLevelOptions } from './lowlevel.js'
import { checkAllowOther, sharedMode } from './sharing.js'
import { loadBinding } from './native.js'

const require = createRequire(import.meta.url)

/**
 * The kernel's own attribute and name caches, kept short: the mount's cache
 * (mount/cache.ts) answers repeated questions without a round trip, and is the
 * one the host's invalidations reach; the kernel's cannot be told.
 */
const KERNEL_CACHE = ['attr_timeout=0.2', 'entry_timeout=0.2', 'negative_timeout=0']

/**
 * Options fuse-native cannot pass itself (DESIGN §9): direct_io so files of
 * unknown size stream and reads are never cut at a stale size; big_writes so
 * writes arrive in 128 KiB pieces, not 4 KiB.
 */
export const EXTRA_FUSE_OPTIONS = ['direct_io', 'big_writes', 'fsname=herds', 'subtype=herds', ...KERNEL_CACHE]

export interface Mounted {
  mountpoint: string
  unmount (): Promise<void>
}

type FuseClass = typeof import('fuse-native')

/** Loads fuse-native, or says in one line what to install. */
function loadFuse (): FuseClass {
  checkFuseDevice()
  return loadFuseLibrary()
}

/** Refuses when the kernel offers no FUSE device (Linux). */
export function checkFuseDevice (): void {
  if (process.platform === 'linux' && !existsSync('/dev/fuse')) {
    throw new HerdsError('ENOSYS', 'FUSE is not available: /dev/fuse is missing (load the fuse module: sudo modprobe fuse; in a container, give it --device /dev/fuse --cap-add SYS_ADMIN)')
  }
}

/** Loads fuse-native and, through it, libfuse 2 (macFUSE on macOS); says what to install when it cannot. */
export function loadFuseLibrary (): FuseClass {
  try {
    return require('fuse-native') as FuseClass
  } catch (err) {
    throw new HerdsError('ENOSYS', `cannot load FUSE (${(err as Error).message.split('\n')[0]}): ${fuseInstallHint()}`)
  }
}

/** What to install for libfuse 2 on this system. */
export function fuseInstallHint (): string {
  if (process.platform === 'darwin') return 'install macFUSE (brew install --cask macfuse, or https://osxfuse.github.io) and allow its system extension'
  const os = existsSync('/etc/os-release') ? readFileSync('/etc/os-release', 'utf8') : ''
  if (/^(ID|ID_LIKE)=.*(fedora|rhel|centos)/m.test(os)) return 'install libfuse 2: sudo dnf install fuse fuse-libs'
  if (/^(ID|ID_LIKE)=.*arch/m.test(os)) return 'install libfuse 2: sudo pacman -S fuse2'
  return 'install libfuse 2: sudo apt-get install fuse3 libfuse2'
}

/** What to install for the libfuse3 binding, then `npm run setup` to build it. */
export function libfuse3InstallHint (): string {
  if (process.platform === 'darwin') return 'install macFUSE 4.10 or later, then npm run setup (see docs/operations.md)'
  const os = existsSync('/etc/os-release') ? readFileSync('/etc/os-release', 'utf8') : ''
  const packages = /^(ID|ID_LIKE)=.*(fedora|rhel|centos)/m.test(os)
    ? 'sudo dnf install fuse3 fuse3-devel pkgconf'
    : /^(ID|ID_LIKE)=.*arch/m.test(os) ? 'sudo pacman -S fuse3 pkgconf' : 'sudo apt-get install fuse3 libfuse3-dev pkg-config'
  return `for the libfuse3 layer: ${packages}, then npm run setup`
}

/** Unmounts a mountpoint left behind by a crashed mount (ENOTCONN). */
export async function unmountStale (mountpoint: string): Promise<void> {
  if (process.platform === 'darwin') return void await promisify(execFile)('umount', ['-f', mountpoint]).catch(() => {})
  await promisify(execFile)('fusermount3', ['-uz', mountpoint]).catch(() => promisify(execFile)('fusermount', ['-uz', mountpoint])).catch(() => {})
}

/**
 * Makes the mountpoint ready, or says in one line why it cannot be: unmounts
 * a dead mount left there by a crash (ENOTCONN on Linux, ENXIO on macOS),
 * creates it if missing, and refuses one that is mounted already (saying by
 * what) or has files in it (they would be hidden while mounted). `herds up`
 * calls it before it starts anything.
 */
export async function prepareMountpoint (mountpoint: string): Promise<void> {
  const stale = await stat(mountpoint).then(() => false, async (err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOTCONN' || err.code === 'ENXIO') return true
    if (err.code !== 'ENOENT') throw new HerdsError(toHerdsError(err).code, `cannot use ${mountpoint} as the mountpoint: ${err.message}`)
    // macFUSE creates mountpoints under /Volumes itself, where only root may.
    if (!(process.platform === 'darwin' && mountpoint.startsWith('/Volumes/'))) await mkdir(mountpoint, { recursive: true })
    return false
  })
  if (stale) await unmountStale(mountpoint)
  const mounted = mountedAt(mountpoint)
  if (mounted) throw new HerdsError('EBUSY', `${mountpoint} is already mounted: ${mounted}`)
  const entries = await readdir(mountpoint).catch(() => [])
  if (entries.length > 0) throw new HerdsError('ENOTEMPTY', `${mountpoint} is not empty (${entries.length} entries); mount on an empty directory (--mount DIR)`)
}

/** What is mounted at `dir`, in words (Linux: from /proc/self/mounts), or undefined. */
function mountedAt (dir: string): string | undefined {
  if (process.platform !== 'linux') return undefined
  const unescape = (field: string): string => field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)))
  const line = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ').map(unescape)).filter((f) => f[1] === dir).at(-1)
  if (!line) return undefined
  const [source, , type] = line
  if (type !== 'fuse.herds') return `${type} from ${source}; choose another --mount`
  const owners = herdsProcessesNaming(dir)
  return `a Herds mount${owners.length ? ` (${owners.join('; ')})` : ''}; stop that herds, or unmount it with: fusermount -u ${dir}`
}

/** Running herds processes whose command line names `dir`, as "pid N: herds …". */
function herdsProcessesNaming (dir: string): string[] {
  const found: string[] = []
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid)) {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
      const at = args.findIndex((arg) => /(^|\/)herds(\.js)?$/.test(arg))
      if (at !== -1 && args.includes(dir)) found.push(`pid ${pid}: herds ${args.slice(at + 1).join(' ')}`)
    } catch { /* gone meanwhile, or not ours to read */ }
  }
  return found
}

/** Which FUSE layer a mount uses: our libfuse3 binding, or fuse-native (libfuse 2) where it cannot load. */
export type FuseLayer = 'libfuse3' | 'fuse-native'

/**
 * The layer this machine gets, and why: libfuse3 unless HERDS_FUSE=fuse-native
 * asks otherwise or the binding cannot load (no libfuse3, not built).
 */
export function chooseFuseLayer (): { layer: FuseLayer, why?: string } {
  if (process.env.HERDS_FUSE === 'fuse-native') return { layer: 'fuse-native', why: 'HERDS_FUSE=fuse-native' }
  try {
    loadBinding()
    return { layer: 'libfuse3' }
  } catch (err) {
    if (process.env.HERDS_FUSE === 'libfuse3') throw err
    return { layer: 'fuse-native', why: (err as Error).message }
  }
}

/** Loads the layer chooseFuseLayer picks, or says in one line what to install. */
export function loadFuseLayer (): FuseLayer {
  const { layer } = chooseFuseLayer()
  if (layer === 'fuse-native') loadFuseLibrary()
  return layer
}

export interface MountOptions extends LowLevelOptions {}

/** Mounts `tree` at `mountpoint` (created if missing), through the layer chooseFuseLayer picks. */
export async function mountTree (tree: Tree, mountpoint: string, opts: MountOptions = {}): Promise<Mounted & { layer: FuseLayer }> {
  checkFuseDevice()
  if (opts.allowOther) checkAllowOther()
  if (chooseFuseLayer().layer === 'libfuse3') {
    await prepareMountpoint(mountpoint)
    let mounted
    try {
      mounted = mountLowLevel(tree, mountpoint, opts)
    } catch (err) {
      throw new HerdsError('EIO', `cannot mount at ${mountpoint}: ${(err as Error).message}`)
    }
    return { mountpoint, layer: 'libfuse3', unmount: () => mounted.unmount() }
  }
  return { ...await mountFuseNative(tree, mountpoint, opts), layer: 'fuse-native' }
}

/** Mounts `tree` through fuse-native (libfuse 2's high-level API): the fallback. */
async function mountFuseNative (tree: Tree, mountpoint: string, opts: MountOptions): Promise<Mounted> {
  const Fuse = loadFuse()
  await prepareMountpoint(mountpoint)

  class HerdsFuse extends Fuse {
    override _fuseOptions (): string {
      const base = super._fuseOptions()
      return (base ? base + ',' : '-o') + EXTRA_FUSE_OPTIONS.join(',')
    }
  }

  const fuse = new HerdsFuse(mountpoint, fuseOps(tree, opts), {
    allowOther: opts.allowOther,
    defaultPermissions: opts.allowOther,
    // Our own calls time out where they should (see OP_TIMEOUT_MS); fuse-native's
    // blanket 15 s would cut blocking reads such as `cat stdout` or `cat exit`.
    timeout: false,
  })
  await new Promise<void>((resolve, reject) => {
    fuse.mount((err) => err
      ? reject(new HerdsError('EIO', `cannot mount at ${mountpoint}: ${err.message} (is something mounted there already?)`))
      : resolve())
  })
  let unmounted: Promise<void> | undefined
  return {
    mountpoint,
    unmount: () => {
      unmounted ??= new Promise<void>((resolve) => fuse.unmount(() => resolve()))
      return unmounted
    },
  }
}

/** The platform's open flags as the Tree's portable ones (access mode and append). */
function toTreeFlags (flags: number): number {
  return (flags & O_ACCMODE) | (flags & fsConstants.O_APPEND ? O_APPEND : 0)
}

/** The fuse-native operation table over a Tree. */
export function fuseOps (tree: Tree, opts: { allowOther?: boolean } = {}): Record<string, (...args: any[]) => void> {
  const uid = process.getuid?.() ?? 0
  const gid = process.getgid?.() ?? 0
  const fail = (cb: (code: number) => void) => (err: unknown): void => cb(-errnoNumber(toHerdsError(err).code))
  const done = (cb: (code: number) => void) => (): void => cb(0)
  const toFuseStat = (s: Stat, path: string): Record<string, number> => ({
    mode: opts.allowOther ? sharedMode(path, s.mode) : s.mode, uid, gid, size: s.size, nlink: s.nlink, blocks: s.blocks ?? Math.ceil(s.size / 512), blksize: 4096,
    atime: s.atimeMs, mtime: s.mtimeMs, ctime: s.ctimeMs, dev: 0, ino: 0, rdev: 0,
  })
  return {
    init: (cb) => cb(0),
    getattr: (path: string, cb) => { tree.getattr(path).then((s) => cb(0, toFuseStat(s, path)), fail(cb)) },
    fgetattr: (path: string, _fh: number, cb) => { tree.getattr(path).then((s) => cb(0, toFuseStat(s, path)), fail(cb)) },
    readdir: (path: string, cb) => { tree.readdir(path).then((names) => cb(0, names), fail(cb)) },
    open: (path: string, flags: number, cb) => { tree.open(path, toTreeFlags(flags)).then((fh) => cb(0, fh), fail(cb)) },
    create: (path: string, mode: number, cb) => { tree.create(path, mode).then(({ fh }) => cb(0, fh), fail(cb)) },
    read: (path: string, fh: number, buf: Buffer, len: number, pos: number, cb) => {
      tree.read(path, fh, pos, len).then((data) => {
        buf.set(data.subarray(0, len))
        cb(Math.min(data.length, len))
      }, fail(cb))
    },
    write: (path: string, fh: number, buf: Buffer, len: number, pos: number, cb) => {
      // The buffer is the kernel's, valid only until we answer: copy it.
      tree.write(path, fh, pos, Buffer.from(buf.subarray(0, len))).then((n) => cb(n), fail(cb))
    },
    flush: (path: string, fh: number, cb) => { tree.flush(path, fh).then(done(cb), fail(cb)) },
    // fsync sends what the mount gathered, then the node writes the file to its disk.
    fsync: (path: string, datasync: boolean, fh: number, cb) => { tree.fsync(path, fh, Boolean(datasync)).then(done(cb), fail(cb)) },
    release: (path: string, fh: number, cb) => { tree.release(path, fh).then(done(cb), fail(cb)) },
    truncate: (path: string, size: number, cb) => { tree.truncate(path, size).then(done(cb), fail(cb)) },
    ftruncate: (path: string, _fh: number, size: number, cb) => { tree.truncate(path, size).then(done(cb), fail(cb)) },
    unlink: (path: string, cb) => { tree.unlink(path).then(done(cb), fail(cb)) },
    rename: (from: string, to: string, cb) => { tree.rename(from, to).then(done(cb), fail(cb)) },
    mkdir: (path: string, mode: number, cb) => { tree.mkdir(path, mode).then(done(cb), fail(cb)) },
    rmdir: (path: string, cb) => { tree.rmdir(path).then(done(cb), fail(cb)) },
    symlink: (target: string, path: string, cb) => { tree.symlink(target, path).then(done(cb), fail(cb)) },
    link: (from: string, to: string, cb) => { tree.link(from, to).then(done(cb), fail(cb)) },
    readlink: (path: string, cb) => { tree.readlink(path).then((target) => cb(0, target), fail(cb)) },
    chmod: (path: string, mode: number, cb) => { tree.chmod(path, mode).then(done(cb), fail(cb)) },
    // Every file shows as the mount user's: giving it to that user (tar, cp -p as
    // root do) changes nothing and succeeds; any other owner is refused.
    chown: (path: string, newUid: number, newGid: number, cb) => {
      const same = (want: number, have: number): boolean => want === have || want === -1 || want === 0xffffffff
      tree.getattr(path).then(() => cb(same(newUid, uid) && same(newGid, gid) ? 0 : -errnoNumber('EPERM')), fail(cb))
    },
    utimens: (path: string, atime: number, mtime: number, cb) => { setTimes(tree, path, atime, mtime).then(done(cb), fail(cb)) },
    statfs: (path: string, cb) => {
      tree.statfs(path).then((s) => cb(0, { ...s, frsize: s.bsize, favail: s.ffree, fsid: 0, flag: 0 }), fail(cb))
    },
  }
}

/** How .ci/setup's fuse-native hands over UTIME_OMIT and UTIME_NOW: as these times (ms). */
const TIME_OMITTED = 1
const TIME_NOW = 2

/**
 * Sets a file's times as utimensat(2) asked: a time left out (touch -m, tar x)
 * is left as it is on the node; "now" is the mount's clock, as libfuse would.
 * fuse-native hands times over in ms, so they are exact to about a microsecond.
 */
async function setTimes (tree: Tree, path: string, atimeMs: number, mtimeMs: number): Promise<void> {
  const now = Date.now()
  const pick = (asked: number): TimeSpec | null => asked === TIME_OMITTED ? null : timeFromMs(asked === TIME_NOW ? now : asked)
  await tree.utimens(path, pick(atimeMs), pick(mtimeMs))
}
