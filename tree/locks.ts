/**
 * Record locks on the node for the mount's lock owners. An owner (a process
 * of a mount) holds its fcntl locks on a file through an open file
 * description of its own, opened again from a handle's descriptor (Linux's
 * OFD locks). So one owner's locks meet every other owner's, of this mount or
 * another, and the node's own processes' fcntl locks (SQLite's on the node
 * among them); while an owner's locks through two handles are one set, as
 * POSIX has it. Its description, and so its locks, go when the owner unlocks
 * the whole file (the mount does at close(2)) or the last handle it locked
 * through is released (a mount gone, a connection lost).
 */
import { open, type FileHandle } from 'node:fs/promises'
import { constants } from 'node:fs'
import { HerdsError, toHerdsError } from './errno.js'
import { flockFd, LOCK_TYPE, setLockFd, testLockFd } from './native.js'
import type { FileLock, FlockOp, LockType } from './tree.js'

/** Owners holding a description at once, for all trees of this node. */
export const MAX_LOCK_OWNERS = 4096

/** Of those, the most one mount's connection holds (the host names its owners "<connection>:<owner>"). */
export const MAX_LOCK_OWNERS_PER_CONNECTION = 1024

/** A waiting lock tries again after this long, doubling to the most. */
const RETRY_MS = [5, 100] as const

interface Owned {
  /** The owner's own description of the file, whose locks are the owner's. */
  description: Promise<FileHandle>
  /** The handles it was reached through. */
  users: Set<FileHandle>
  /** Has it held a lock yet? One that never did goes when its first lock fails. */
  locked: boolean
}

const owned = new Map<string, Owned>()
/** Descriptions held per connection, by the part of the owner before its first ":". */
const perConnection = new Map<string, number>()

/** The connection a key's owner came through: what comes before its first ":" (or the whole owner). */
function connectionOf (key: string): string {
  const owner = key.slice(0, key.indexOf('\0'))
  return owner.includes(':') ? owner.slice(0, owner.indexOf(':')) : owner
}

/** Keeps an owner's new description, counted against its connection. */
function keep (key: string, entry: Owned): void {
  owned.set(key, entry)
  const connection = connectionOf(key)
  perConnection.set(connection, (perConnection.get(connection) ?? 0) + 1)
}

/** Lets a description's entry go (the caller closes it). */
function unkeep (key: string): void {
  if (!owned.delete(key)) return
  const connection = connectionOf(key)
  const left = (perConnection.get(connection) ?? 1) - 1
  if (left > 0) perConnection.set(connection, left)
  else perConnection.delete(connection)
}
const keysOf = new Map<FileHandle, Set<string>>()
/** Handles let go already: a lock call still on its way through one must not make it a user again. */
const gone = new WeakSet<FileHandle>()
const FLOCK_OPS: Record<FlockOp, number> = { shared: 0, exclusive: 1, unlock: 2 }

/** The file a handle has open, as the node's disk names it. */
async function fileKey (handle: FileHandle): Promise<string> {
  const s = await handle.stat({ bigint: true })
  return `${s.dev}:${s.ino}`
}

/** `owner`'s description of the file `handle` has open, opened once. */
async function descriptionOf (handle: FileHandle, owner: string, key: string): Promise<FileHandle> {
  // Released while its file was looked up: as a user it would never be released again, and keep the description.
  if (gone.has(handle)) throw new HerdsError('EBADF', 'the file was closed while its lock was on its way')
  let entry = owned.get(key)
  if (!entry) {
    if (process.platform !== 'linux') throw new HerdsError('ENOLCK', 'this node cannot hold locks for a mount (it needs Linux\'s open file description locks)')
    if (owned.size >= MAX_LOCK_OWNERS) throw new HerdsError('ENOLCK', `${MAX_LOCK_OWNERS} lock owners hold locks on this node already`)
    if ((perConnection.get(connectionOf(key)) ?? 0) >= MAX_LOCK_OWNERS_PER_CONNECTION) throw new HerdsError('ENOLCK', `one mount holds locks for ${MAX_LOCK_OWNERS_PER_CONNECTION} lock owners on this node already`)
    // /proc/self/fd/N is the open file itself, not its path again: the description is of exactly that file.
    const proc = `/proc/self/fd/${handle.fd}`
    entry = { description: open(proc, constants.O_RDWR).catch(() => open(proc, constants.O_RDONLY)).catch(() => open(proc, constants.O_WRONLY)), users: new Set(), locked: false }
    keep(key, entry)
    entry.description.catch(() => { if (owned.get(key) === entry) unkeep(key) })
  }
  entry.users.add(handle)
  let keys = keysOf.get(handle)
  if (!keys) keysOf.set(handle, keys = new Set())
  keys.add(key)
  return entry.description
}

/** Closes an owner's description: every lock it held is dropped by the node's kernel. */
function drop (key: string): void {
  const entry = owned.get(key)
  if (!entry) return
  unkeep(key)
  for (const handle of entry.users) keysOf.get(handle)?.delete(key)
  entry.description.then((d) => d.close()).catch(() => {})
}

/** Tries `attempt` until no lock is in the way; at once only, unless `wait`; EINTR when `signal` aborts. */
async function retrying (attempt: () => void, wait: boolean, signal?: AbortSignal): Promise<void> {
  for (let delay: number = RETRY_MS[0]; ; delay = Math.min(delay * 2, RETRY_MS[1])) {
    try {
      return attempt()
    } catch (err) {
      const code = toHerdsError(err).code
      if (code !== 'EAGAIN' && code !== 'EACCES') throw err
      if (!wait) throw new HerdsError('EAGAIN', 'another lock is in the way')
    }
    if (signal?.aborted) throw new HerdsError('EINTR', 'interrupted while waiting for a lock')
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, delay)
      signal?.addEventListener('abort', done, { once: true })
      function done (): void { clearTimeout(timer); signal?.removeEventListener('abort', done); resolve() }
    })
    if (signal?.aborted) throw new HerdsError('EINTR', 'interrupted while waiting for a lock')
  }
}

/** The lock in the way of `owner` taking `type` over the range, if any. */
export async function testLock (handle: FileHandle, owner: string, type: LockType, start: number, length: number): Promise<FileLock | null> {
  if (type === 'unlock') return null
  const key = `${owner}\0${await fileKey(handle)}`
  const entry = owned.get(key)
  // An owner with no description holds no lock: the handle's own description (which never holds one) tests as well.
  const fd = entry ? (await entry.description).fd : handle.fd
  const found = testLockFd(fd, LOCK_TYPE[type], start, length)
  return found ? { type: found.type === LOCK_TYPE.read ? 'read' : 'write', start: found.start, length: found.length, pid: found.pid } : null
}

/** Takes, changes or drops `owner`'s lock over the range; unlocking the whole file lets its description go. */
export async function setLock (handle: FileHandle, owner: string, type: LockType, start: number, length: number, wait: boolean, signal?: AbortSignal): Promise<void> {
  const key = `${owner}\0${await fileKey(handle)}`
  if (type === 'unlock') {
    const entry = owned.get(key)
    if (!entry) return
    if (start === 0 && length === 0) return drop(key)
    return setLockFd((await entry.description).fd, LOCK_TYPE.unlock, start, length)
  }
  const description = await descriptionOf(handle, owner, key)
  try {
    await retrying(() => setLockFd(description.fd, LOCK_TYPE[type], start, length), wait, signal)
  } catch (err) {
    if (owned.get(key)?.locked === false) drop(key) // it holds nothing: an owner that only waited takes no room
    throw err
  }
  owned.get(key)!.locked = true
}

/** flock(2) on the handle's own description (a BSD lock belongs to the open file, not the process). */
export async function flockHandle (handle: FileHandle, op: FlockOp, wait: boolean, signal?: AbortSignal): Promise<void> {
  await retrying(() => flockFd(handle.fd, FLOCK_OPS[op]), wait, signal)
}

/** A handle is let go: each owner's description reached only through it goes, and its locks with it. */
export function released (handle: FileHandle): void {
  gone.add(handle)
  const keys = keysOf.get(handle)
  keysOf.delete(handle)
  for (const key of keys ?? []) {
    const entry = owned.get(key)
    if (!entry) continue
    entry.users.delete(handle)
    if (entry.users.size === 0) drop(key)
  }
}
