/**
 * The file calls Node lacks, for local trees: fifos and sockets (mknod),
 * extended attributes, and rename with flags, from our small addon
 * (tree/native/herds_at.c, built by .ci/setup). Each takes a path local.ts
 * built in a folder opened beneath the root and never follows its last name.
 * Without the addon each says so with ENOTSUP.
 */
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { errnoName, HerdsError } from './errno.js'

/** The addon's calls, numbered as herds_at.c's `enum call`. */
const CALL = { MKNOD: 0, GETXATTR: 1, SETXATTR: 2, LISTXATTR: 3, REMOVEXATTR: 4, RENAME: 5, UTIMENS: 6 } as const

interface Addon {
  call (op: number, path: string, second: string, number: number, value?: Buffer | Float64Array): Promise<Buffer | number | undefined>
  lock (fd: number, cmd: number, type: number, start: number, length: number): number[] | undefined
  flock (fd: number, op: number): undefined
  beneath (root: string, rel: string): number
  nonblock (fd: number): undefined
}

/** Where setup builds it: tree/native/build, reached from dist/tree/ or from tree/. */
const ADDON = [new URL('../../tree/native/build/Release/herds_at.node', import.meta.url), new URL('./native/build/Release/herds_at.node', import.meta.url)]
  .map((url) => fileURLToPath(url)).find((path) => existsSync(path))

let loaded: Addon | Error | undefined

function addon (): Addon {
  if (loaded === undefined) {
    try {
      if (!ADDON) throw new Error('tree/native is not built (run npm run setup; it needs a C compiler and Node\'s headers)')
      loaded = createRequire(import.meta.url)(ADDON) as Addon
    } catch (err) {
      loaded = err as Error
    }
  }
  if (loaded instanceof Error) throw new HerdsError('ENOTSUP', `this node cannot make fifos, keep extended attributes or exchange names: ${loaded.message.split('\n')[0]}`)
  return loaded
}

/** Is the addon here? (`herds doctor`, and tests that need it.) */
export function hasFileCalls (): boolean {
  try { addon(); return true } catch { return false }
}

/** An addon error as Node's own fs errors are: `code` the errno's name. */
function named (err: unknown): unknown {
  const errno = (err as { errno?: unknown }).errno
  if (typeof errno !== 'number') return err
  return Object.assign(new Error(errnoName(errno)), { code: errnoName(errno) })
}

/** Runs one call; a failed one rejects with an error carrying the errno's name, as Node's own fs errors do. */
async function call (op: number, path: string, second: string, number: number, value?: Buffer | Float64Array): Promise<Buffer | number | undefined> {
  try {
    return await addon().call(op, path, second, number, value)
  } catch (err) {
    throw named(err)
  }
}

/** mknod(2) of a fifo or a socket (the caller checks the type). */
export async function mknodAt (path: string, mode: number): Promise<void> {
  await call(CALL.MKNOD, path, '', mode)
}

/** An attribute's value; with `size` 0, only its length. */
export async function getXattrAt (path: string, name: string, size: number): Promise<Buffer | number> {
  return await call(CALL.GETXATTR, path, name, size) as Buffer | number
}

/** Sets an attribute; `flags` are XATTR_CREATE (1) and XATTR_REPLACE (2). */
export async function setXattrAt (path: string, name: string, value: Buffer, flags: number): Promise<void> {
  await call(CALL.SETXATTR, path, name, flags, value)
}

/** The attribute names, NUL-terminated one after another; with `size` 0, only their length. */
export async function listXattrAt (path: string, size: number): Promise<Buffer | number> {
  return await call(CALL.LISTXATTR, path, '', size) as Buffer | number
}

export async function removeXattrAt (path: string, name: string): Promise<void> {
  await call(CALL.REMOVEXATTR, path, name, 0)
}

/** rename(2) with flags: 1 no replace, 2 exchange. */
export async function renameAt (from: string, to: string, flags: number): Promise<void> {
  await call(CALL.RENAME, from, to, flags)
}

/** A record lock's kind, as the addon numbers them. */
export const LOCK_TYPE = { read: 0, write: 1, unlock: 2 } as const

/** The lock in the way of `type` over [start, start+length) on the description `fd` (0: to the end), if any. */
export function testLockFd (fd: number, type: number, start: number, length: number): { type: number, start: number, length: number, pid: number } | undefined {
  let found: number[] | undefined
  try { found = addon().lock(fd, 0, type, start, length) } catch (err) { throw named(err) }
  if (!found || found[0] === LOCK_TYPE.unlock) return undefined
  return { type: found[0], start: found[1], length: found[2], pid: found[3] }
}

/** Sets (or with type unlock, clears) a record lock held by the description `fd`; EAGAIN if one is in the way. Never waits. */
export function setLockFd (fd: number, type: number, start: number, length: number): void {
  try { addon().lock(fd, 1, type, start, length) } catch (err) { throw named(err) }
}

/** flock(2) on `fd` without waiting: 0 shared, 1 exclusive, 2 unlock; EAGAIN (EWOULDBLOCK) if held elsewhere. */
export function flockFd (fd: number, op: number): void {
  try { addon().flock(fd, op) } catch (err) { throw named(err) }
}

/** utimensat(2) of the entry itself (never following a link), to the nanosecond; null leaves that time as it is. */
export async function utimensAt (path: string, atime: { sec: number, nsec: number } | null, mtime: { sec: number, nsec: number } | null): Promise<void> {
  const times = Float64Array.of(atime?.sec ?? 0, atime?.nsec ?? -1, mtime?.sec ?? 0, mtime?.nsec ?? -1)
  await call(CALL.UTIMENS, path, '', 0, times)
}

/** Sets O_NONBLOCK on `fd` (a terminal's master side), so a write never waits; ENOTSUP without the addon. */
export function setNonBlocking (fd: number): void {
  try { addon().nonblock(fd) } catch (err) { throw named(err) }
}

/** Set once openat2 is found missing (ENOSYS: an old kernel, a seccomp filter): callers walk instead. */
let noOpenat2 = process.platform !== 'linux'

/**
 * The folder `rel` (names joined by "/") inside `root`, opened O_PATH by the
 * kernel in one openat2(RESOLVE_BENEATH) call, links followed only while they
 * stay inside; EXDEV if the way leads out. Undefined where that call is not
 * to be had (no addon, no openat2): then the caller walks the folders itself.
 */
export function openBeneath (root: string, rel: string): number | undefined {
  if (noOpenat2) return undefined
  let calls: Addon
  try { calls = addon() } catch { noOpenat2 = true; return undefined }
  try {
    return calls.beneath(root, rel)
  } catch (err) {
    // ENOSYS: no openat2 here; EPERM: a seccomp filter's answer (openat2 of O_PATH beneath never gives it otherwise).
    const errno = (err as { errno?: unknown }).errno
    if (errno === 38 || errno === 1) { noOpenat2 = true; return undefined }
    throw named(err)
  }
}
