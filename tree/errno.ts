/**
 * The errno table: every error a tree may report, by name. Errors travel the
 * wire by name and become numbers only at the edges (FUSE, the shell), because
 * the numbers differ between Linux and macOS.
 */
import { constants } from 'node:os'

/** errno name → [Linux number, macOS number]. */
const TABLE = {
  EPERM: [1, 1],
  ENOENT: [2, 2],
  E2BIG: [7, 7],
  EINTR: [4, 4],
  EIO: [5, 5],
  EBADF: [9, 9],
  EAGAIN: [11, 35],
  ENOMEM: [12, 12],
  EACCES: [13, 13],
  EBUSY: [16, 16],
  EEXIST: [17, 17],
  EXDEV: [18, 18],
  ENOTDIR: [20, 20],
  EISDIR: [21, 21],
  EINVAL: [22, 22],
  ENFILE: [23, 23],
  EMFILE: [24, 24],
  EFBIG: [27, 27],
  ENOSPC: [28, 28],
  EROFS: [30, 30],
  EPIPE: [32, 32],
  ERANGE: [34, 34],
  ENAMETOOLONG: [36, 63],
  EDEADLK: [35, 11],
  ENOLCK: [37, 77],
  ENOSYS: [38, 78],
  ENOTEMPTY: [39, 66],
  ELOOP: [40, 62],
  /** No such extended attribute: macOS calls it ENOATTR (93), which its FUSE expects. */
  ENODATA: [61, 93],
  EPROTO: [71, 100],
  ENOTSUP: [95, 45],
  ETIMEDOUT: [110, 60],
  ESTALE: [116, 70],
  ECONNREFUSED: [111, 61],
  EHOSTDOWN: [112, 64],
  ECANCELED: [125, 89],
} as const satisfies Record<string, readonly [number, number]>

export type Errno = keyof typeof TABLE

/** All errno names, for zod enums. */
export const ERRNO_NAMES = Object.keys(TABLE) as [Errno, ...Errno[]]

/** Node's aliases for codes we report under another name. */
const ALIASES: Record<string, Errno> = { EOPNOTSUPP: 'ENOTSUP', EWOULDBLOCK: 'EAGAIN', ECONNRESET: 'EIO', ENOATTR: 'ENODATA' }

/**
 * The one error type that crosses the wire: an errno name and a message a
 * person can act on.
 */
export class HerdsError extends Error {
  readonly code: Errno
  constructor (code: Errno, message: string) {
    // An answer (ENOENT, EACCES), made by the thousand, not a bug: where it was made is not worth a stack.
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    try {
      super(message)
    } finally {
      Error.stackTraceLimit = limit
    }
    this.name = 'HerdsError'
    this.code = code
  }
}

/** Is this a known errno name? */
export function isErrno (code: unknown): code is Errno {
  return typeof code === 'string' && Object.hasOwn(TABLE, code)
}

/**
 * Turns anything thrown (a HerdsError, a Node fs error, a bug) into a HerdsError,
 * so nothing but an errno ever leaves a tree. Unknown failures become EIO.
 */
export function toHerdsError (err: unknown): HerdsError {
  if (err instanceof HerdsError) return err
  const code = (err as { code?: unknown } | null)?.code
  const message = err instanceof Error ? err.message : String(err)
  if (isErrno(code)) return new HerdsError(code, message)
  if (typeof code === 'string' && ALIASES[code]) return new HerdsError(ALIASES[code], message)
  if ((err as { name?: string } | null)?.name === 'AbortError') return new HerdsError('ECANCELED', 'cancelled')
  return new HerdsError('EIO', message)
}

/** The platform's number for an errno name (positive), for the FUSE edge. */
export function errnoNumber (code: Errno, platform: NodeJS.Platform = process.platform): number {
  const fromNode = (constants.errno as Record<string, number | undefined>)[code]
  if (platform === process.platform && fromNode !== undefined && !(code === 'ENODATA' && platform === 'darwin')) return fromNode
  return TABLE[code][platform === 'darwin' ? 1 : 0]
}

/** The errno name of a number from this machine's system calls (tree/native.ts), or EIO if it has none we report. */
export function errnoName (errno: number): Errno {
  const entry = Object.entries(constants.errno).find(([, n]) => n === errno)
  const name = entry?.[0]
  if (isErrno(name)) return name
  return (name !== undefined && ALIASES[name]) || 'EIO'
}
