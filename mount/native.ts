/**
 * Loads our libfuse3 binding (mount/native/herds_fuse.c, built by .ci/setup),
 * or says in one line why it cannot, so the mount falls back to fuse-native.
 */
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { HerdsError } from '../tree/errno.js'

/** A mounted session, opaque to JavaScript. */
export type Session = { readonly __session: unique symbol }

/** Called for every request: see the `op` enum in herds_fuse.c (mirrored in lowlevel.ts). */
export type RequestHandler = (op: number, id: number, nums: number[], name: string | undefined, name2: string | undefined, data: Buffer | undefined, uid: number, gid: number) => void

/** The binding's functions; each reply returns false if the request was answered already (or interrupted away). */
export interface Binding {
  mount (mountpoint: string, options: string, maxWrite: number, maxReadahead: number, handler: RequestHandler): Session
  /** Ends the session's loop; OP_EXIT follows, then destroy() unmounts. */
  unmount (session: Session): void
  /** Wakes the loop thread again, in case the first signal came before its read. */
  wake (session: Session): void
  destroy (session: Session): void
  replyErr (session: Session, id: number, errno: number): boolean
  replyEntry (session: Session, id: number, entry: Float64Array, attr: Float64Array): boolean
  replyCreate (session: Session, id: number, entry: Float64Array, attr: Float64Array, fh: number, openFlags: number): boolean
  replyAttr (session: Session, id: number, attr: Float64Array, timeout: number): boolean
  replyOpen (session: Session, id: number, fh: number, openFlags: number): boolean
  replyBuf (session: Session, id: number, data: Uint8Array): boolean
  replyReadlink (session: Session, id: number, target: string): boolean
  replyWrite (session: Session, id: number, count: number): boolean
  replyXattr (session: Session, id: number, size: number): boolean
  replyStatfs (session: Session, id: number, statfs: Float64Array): boolean
  /** [type 0 read, 1 write, 2 none; start; length; pid]: the lock in the way of a getlk. */
  replyLock (session: Session, id: number, lock: Float64Array): boolean
  /** Answers success once the kernel dropped the inode's pages (the notifier thread does both); false: its queue is full, try again. */
  replyAfterInval (session: Session, id: number, nodeid: number): boolean
  /** Packs what fits in `size`; returns how many entries it packed (-1: the request was gone). */
  replyDir (session: Session, id: number, size: number, plus: boolean, names: string[], offsets: Float64Array, entries: Float64Array, attrs: Float64Array): number
  /** Queues an invalidation for the notifier thread; false when its queue is full. */
  notifyInode (session: Session, nodeid: number, offset: number, length: number): boolean
  notifyEntry (session: Session, parent: number, name: string): boolean
}

/** Where setup builds it: beside this file's source (mount/native/), reached from dist/mount/ or from mount/. */
const ADDON = [new URL('../../mount/native/build/Release/herds_fuse.node', import.meta.url), new URL('./native/build/Release/herds_fuse.node', import.meta.url)]
  .map((url) => fileURLToPath(url)).find((path) => existsSync(path)) ?? fileURLToPath(new URL('./native/build/Release/herds_fuse.node', import.meta.url))

let loaded: Binding | Error | undefined

/** The binding, or a HerdsError saying why it is not there. */
export function loadBinding (): Binding {
  if (loaded === undefined) {
    try {
      if (!existsSync(ADDON)) throw new Error(`${ADDON} is not built (run npm run setup; it needs libfuse3's headers and a C compiler)`)
      loaded = createRequire(import.meta.url)(ADDON) as Binding
    } catch (err) {
      loaded = err as Error
    }
  }
  if (loaded instanceof Error) throw new HerdsError('ENOSYS', `cannot load the libfuse3 binding: ${loaded.message.split('\n')[0]}`)
  return loaded
}
