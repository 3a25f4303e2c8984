/**
 * The wire: every frame two peers exchange, as zod schemas (the single source of
 * truth), encoded with msgpackr in binary WebSocket frames. File bytes travel as
 * msgpack binary, never base64.
 */
import { Packr } from 'msgpackr'
import { z } from 'zod'
import { ERRNO_NAMES, HerdsError } from './errno.js'
import { isEntryName, joinPath, NAME_MAX, splitPath } from './paths.js'
import { timeFromMs, type Op } from './tree.js'

/**
 * The longest path on the wire: a node's own PATH_MAX below the longest
 * prefix the namespace puts before it (/nodes/<n>/sandboxes/<s>/workspace).
 */
export const MAX_PATH = 4096 + 1024
const NAME_TOO_LONG = `a name in the path is longer than ${NAME_MAX} bytes`

/** The protocol version; a peer speaking any other version is refused. */
export const PROTOCOL_VERSION = 6

/**
 * A path inside a tree, normalised. ".." is refused rather than resolved, so no
 * path can climb out of the tree it was sent to (the kernel resolves ".." before
 * FUSE sees a path; only a crafted request carries one).
 */
const Path = z.string().min(1).max(MAX_PATH)
  .refine((p) => !p.includes('\0'), 'a path may not contain NUL')
  .refine((p) => !p.split('/').includes('..'), 'a path may not contain ".."')
  .refine((p) => splitPath(p).every((name) => Buffer.byteLength(name) <= NAME_MAX), NAME_TOO_LONG)
  .transform((p) => joinPath(splitPath(p)))
const Fh = z.number().int().min(0).max(2 ** 31 - 1)
const Offset = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
/** The most bytes one read asks for, and one write carries. */
export const MAX_IO = 16 * 1024 * 1024
const Length = z.number().int().min(0).max(MAX_IO)
const Mode = z.number().int().min(0).max(0o7777 | 0o170000)
const Bytes = z.instanceof(Uint8Array).refine((b) => b.byteLength <= MAX_IO, `at most ${MAX_IO} bytes at a time`)
const Time = z.number().finite()
const Nsec = z.number().int().min(0).max(999_999_999)
/**
 * A time to set: {sec, nsec} exactly, null to leave it as it is, or (from a
 * peer of an hour before exact times) ms as a double.
 */
const SetTime = z.union([
  z.object({ sec: z.number().int().min(-(2 ** 53) + 1).max(2 ** 53 - 1), nsec: Nsec }),
  Time.transform(timeFromMs),
  z.null(),
])
/** rename's flags: RENAME_NOREPLACE, RENAME_EXCHANGE (not both); absent from an older peer: 0. */
const RenameFlags = z.number().int().refine((f) => f === 0 || f === 1 || f === 2, 'rename flags are 0, 1 (no replace) or 2 (exchange)')
  .nullish().transform((f) => f ?? 0)
/** An extended attribute's name and value, within the kernel's own limits (XATTR_NAME_MAX, XATTR_SIZE_MAX). */
export const XATTR_NAME_MAX = 255
export const XATTR_SIZE_MAX = 64 * 1024
const XattrName = z.string().min(1).max(XATTR_NAME_MAX).refine((n) => !n.includes('\0') && Buffer.byteLength(n) <= XATTR_NAME_MAX, 'an attribute name is 1-255 bytes without NUL')
const XattrValue = z.instanceof(Uint8Array).refine((b) => b.byteLength <= XATTR_SIZE_MAX, `an attribute value is at most ${XATTR_SIZE_MAX} bytes`)

/** A lock owner: a mount's name for one of its processes (mount/lowlevel.ts makes it unique across mounts). */
const LockOwner = z.string().min(1).max(128).regex(/^[\x21-\x7e]+$/, 'a lock owner is 1-128 printable ASCII characters')
const LockType = z.enum(['read', 'write', 'unlock'])

/** The arguments of each Tree operation, in order, without the context. */
export const OP_ARGS = {
  getattr: z.tuple([Path]),
  readdir: z.tuple([Path]),
  readdirplus: z.tuple([Path]),
  open: z.tuple([Path, z.number().int()]),
  read: z.tuple([Path, Fh, Offset, Length]),
  write: z.tuple([Path, Fh, Offset, Bytes]),
  truncate: z.tuple([Path, Offset]),
  flush: z.tuple([Path, Fh]),
  release: z.tuple([Path, Fh]),
  create: z.tuple([Path, Mode]),
  mkdir: z.tuple([Path, Mode]),
  unlink: z.tuple([Path]),
  rmdir: z.tuple([Path]),
  rename: z.tuple([Path, Path, RenameFlags]),
  link: z.tuple([Path, Path]),
  symlink: z.tuple([z.string().min(1).max(4096), Path]),
  readlink: z.tuple([Path]),
  utimens: z.tuple([Path, SetTime, SetTime]),
  chmod: z.tuple([Path, Mode]),
  statfs: z.tuple([Path]),
  // Only fifos and sockets; the type bits are checked by the tree that makes them.
  mknod: z.tuple([Path, Mode]),
  fsync: z.tuple([Path, Fh, z.boolean()]),
  getxattr: z.tuple([Path, XattrName]),
  setxattr: z.tuple([Path, XattrName, XattrValue, z.number().int().min(0).max(3)]),
  listxattr: z.tuple([Path]),
  removexattr: z.tuple([Path, XattrName]),
  getlk: z.tuple([Path, Fh, LockOwner, LockType, Offset, Offset]),
  setlk: z.tuple([Path, Fh, LockOwner, LockType, Offset, Offset, z.boolean()]),
  flock: z.tuple([Path, Fh, z.enum(['shared', 'exclusive', 'unlock']), z.boolean()]),
} as const satisfies Record<Op, z.ZodTuple>

const StatSchema = z.object({
  mode: z.number().int(),
  size: z.number().int().min(0),
  mtimeMs: Time,
  atimeMs: Time,
  ctimeMs: Time,
  nlink: z.number().int().min(0),
  blocks: z.number().int().min(0).optional(),
  ino: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  atimeNsec: Nsec.optional(),
  mtimeNsec: Nsec.optional(),
  ctimeNsec: Nsec.optional(),
})
const StatfsSchema = z.object({
  bsize: z.number(), blocks: z.number(), bfree: z.number(), bavail: z.number(),
  files: z.number(), ffree: z.number(), namemax: z.number(),
})

/** What each Tree operation returns. */
export const OP_RESULTS = {
  getattr: StatSchema,
  // A name no path could hold (a "/", "..", 300 bytes) is left out of the listing rather than failing it.
  readdir: z.array(z.string()).transform((names) => names.filter(isEntryName)),
  readdirplus: z.array(z.tuple([z.string(), StatSchema.nullable()])).transform((entries) => entries.filter(([name]) => isEntryName(name))),
  open: Fh,
  read: Bytes,
  write: z.number().int().min(0),
  // A change of attributes answers with the attributes after it, where the tree knows them (protocol 4).
  truncate: StatSchema.nullable().optional(),
  flush: z.null().optional(),
  release: z.null().optional(),
  // The new file's attributes come with its handle (protocol 6), as a change's do (protocol 4).
  create: z.object({ fh: Fh, stat: StatSchema.nullable() }),
  mkdir: z.null().optional(),
  unlink: z.null().optional(),
  rmdir: z.null().optional(),
  rename: z.null().optional(),
  link: z.null().optional(),
  symlink: z.null().optional(),
  readlink: z.string(),
  utimens: StatSchema.nullable().optional(),
  chmod: StatSchema.nullable().optional(),
  statfs: StatfsSchema,
  mknod: z.null().optional(),
  fsync: z.null().optional(),
  getxattr: XattrValue,
  // A listing past 64 KiB of names is what listxattr(2) itself refuses (E2BIG).
  listxattr: z.array(XattrName).max(XATTR_SIZE_MAX),
  setxattr: z.null().optional(),
  removexattr: z.null().optional(),
  getlk: z.object({ type: z.enum(['read', 'write']), start: Offset, length: Offset, pid: z.number().int().min(0) }).nullable(),
  setlk: z.null().optional(),
  flock: z.null().optional(),
} as const satisfies Record<Op, z.ZodType>

export const OPS = Object.keys(OP_ARGS) as [Op, ...Op[]]

/**
 * How long a caller waits for each operation, in ms (0: no limit). Reads may
 * block on purpose (a job's stdout, `exit`); everything else answers promptly
 * or the peer is in trouble.
 */
const WAITS = new Set<Op>(['read', 'setlk', 'flock'])
export const OP_TIMEOUT_MS: Record<Op, number> = Object.fromEntries(
  OPS.map((op) => [op, WAITS.has(op) ? 0 : 60_000]),
) as Record<Op, number>

/** A node's description of itself, sent when it registers. */
export const NodeInfoSchema = z.object({
  name: z.string(),
  hostname: z.string(),
  os: z.string(),
  arch: z.string(),
  release: z.string(),
  cpus: z.number().int(),
  memory: z.number(),
  version: z.string(),
  images: z.array(z.string()),
})
export type NodeInfo = z.infer<typeof NodeInfoSchema>

/** A name a user gives a node (later: a job, sandbox or volume): safe as a path name and in a shell. */
export const SafeName = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/, 'a name is 1-64 letters, digits, "_", "-" or "." (not starting with "." or "-")')

/** The most paths one `changed` frame carries; more are sent as their folders. */
export const MAX_CHANGED = 1000

/** The longest error message a frame carries. */
export const MAX_MESSAGE = 4096
const ErrorBody = z.object({ code: z.enum(ERRNO_NAMES), message: z.string().max(MAX_MESSAGE) })

const Id = z.number().int().min(0)

/** What a node tells the host of its jobs, for the index across nodes (catalog/jobs.json). */
export const JobSummarySchema = z.object({
  /** The job's id; "<sandbox>/<id>" for a job in a sandbox. */
  id: z.string().max(200),
  state: z.string().max(32),
  cmd: z.string().max(64 * 1024),
  exitCode: z.number().int().nullable(),
  signal: z.string().max(32).nullable(),
  createdAt: z.string().max(40),
  startedAt: z.string().max(40).nullable(),
  endedAt: z.string().max(40).nullable(),
  durationMs: z.number().nullable(),
})
export type JobSummary = z.infer<typeof JobSummarySchema>

/** Every frame, by its `t` (and `role` for hello, `ok` for res). */
export const FrameSchema = z.discriminatedUnion('t', [
  z.discriminatedUnion('role', [
    z.object({ t: z.literal('hello'), role: z.literal('node'), protocol: z.number().int(), name: SafeName, info: NodeInfoSchema }),
    z.object({ t: z.literal('hello'), role: z.literal('mount'), protocol: z.number().int() }),
  ]),
  z.object({ t: z.literal('welcome'), protocol: z.number().int(), host: z.string() }),
  z.object({ t: z.literal('bye'), error: ErrorBody }),
  z.object({ t: z.literal('req'), id: Id, op: z.enum(OPS), args: z.array(z.unknown()).max(8) }),
  z.discriminatedUnion('ok', [
    z.object({ t: z.literal('res'), id: Id, ok: z.literal(true), value: z.unknown() }),
    z.object({ t: z.literal('res'), id: Id, ok: z.literal(false), error: ErrorBody }),
  ]),
  z.object({ t: z.literal('cancel'), id: Id }),
  z.object({ t: z.literal('jobs'), jobs: z.array(JobSummarySchema).max(1000) }),
  /**
   * What changed on a node (node → host, in its tree; host → mounts, in the namespace), by kind
   * (tree/changed.ts): anything below `paths`; only the entry itself for `attrs`; a name that came
   * or went for `names`, with the type it names now (S_IFMT bits, 0 for nothing). At most
   * MAX_CHANGED paths in all.
   */
  z.object({
    t: z.literal('changed'),
    paths: z.array(Path).max(MAX_CHANGED),
    attrs: z.array(Path).max(MAX_CHANGED).optional(),
    names: z.array(z.tuple([Path, z.number().int().min(0).max(0o170000)])).max(MAX_CHANGED).optional(),
  }).refine((f) => f.paths.length + (f.attrs?.length ?? 0) + (f.names?.length ?? 0) <= MAX_CHANGED, `at most ${MAX_CHANGED} paths in all`),
])
export type Frame = z.infer<typeof FrameSchema>

// Plain msgpack maps (no record extension), so peers in other languages can speak it.
const packr = new Packr({ useRecords: false, moreTypes: false })

/** Encodes a frame for a binary WebSocket message. */
export function encodeFrame (frame: Frame): Buffer {
  return packr.pack(frame)
}

/**
 * Decodes and validates a binary message; a malformed one becomes an EPROTO
 * HerdsError saying what was wrong, never a crash.
 */
export function decodeFrame (data: Uint8Array): Frame {
  let raw: unknown
  try {
    raw = packr.unpack(data)
  } catch {
    throw new HerdsError('EPROTO', 'malformed frame: not msgpack')
  }
  const parsed = FrameSchema.safeParse(raw)
  if (!parsed.success) throw new HerdsError('EPROTO', `malformed frame: ${z.prettifyError(parsed.error).split('\n').slice(0, 3).join('; ')}`)
  return parsed.data
}

/** Validates the arguments of a request for `op`. */
export function parseArgs (op: Op, args: unknown[]): unknown[] {
  const parsed = OP_ARGS[op].safeParse(args)
  if (!parsed.success && parsed.error.issues.some((issue) => issue.message === NAME_TOO_LONG || (issue.code === 'too_big' && issue.origin === 'string'))) {
    throw new HerdsError('ENAMETOOLONG', `${op}: ${parsed.error.issues.some((issue) => issue.message === NAME_TOO_LONG) ? NAME_TOO_LONG : `a path is longer than ${MAX_PATH} bytes`}`)
  }
  if (!parsed.success) throw new HerdsError('EINVAL', `bad arguments to ${op}: ${z.prettifyError(parsed.error).split('\n').slice(0, 3).join('; ')}`)
  return parsed.data as unknown[]
}

/** Validates the result of `op` from a peer. */
export function parseResult (op: Op, value: unknown): unknown {
  const parsed = OP_RESULTS[op].safeParse(value)
  if (!parsed.success) throw new HerdsError('EPROTO', `bad result for ${op} from peer`)
  return parsed.data
}
