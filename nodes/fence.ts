/**
 * Fences for sandbox jobs, where the OS offers one: bwrap on Linux,
 * sandbox-exec on macOS. Each turns a description of what a job may write,
 * and what it must not see, into the words put before its shell.
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import type { FuseMount } from './mounts.js'

export type Fence = 'bwrap' | 'sandbox-exec' | 'none'

export interface FenceSpec {
  /** Folders the job may write (all else is read-only). */
  writable: string[]
  /** Folders the job must not even read (Herds' own state: tokens, databases), but for `writable` inside them. */
  hidden: string[]
  /** Volumes: [source on the node, where the job sees it]. */
  binds: Array<[string, string]>
  network: boolean
  cwd: string
  /** Every FUSE mount of the machine as the job starts (a Herds mount is one). */
  fuse?: FuseMount[]
  /** The FUSE mounts the sandbox's config lets its jobs see (never a Herds mount: the caller checks). */
  allowMounts?: string[]
  /** macOS: places a Herds mount usually is, denied even when nothing is mounted there as the job starts. */
  usualMounts?: string[]
  /**
   * Linux: the words that give the job a mount namespace of its own whose
   * mounts are private, so a mount made while it runs does not reach it
   * (detectMountNamespace); none where the machine cannot.
   */
  mountNamespace?: string[]
}

/** The write fence this machine offers. */
export function detectFence (platform: NodeJS.Platform = process.platform): Fence {
  if (platform === 'darwin') return existsSync('/usr/bin/sandbox-exec') ? 'sandbox-exec' : 'none'
  if (platform !== 'linux') return 'none'
  const found = (process.env.PATH ?? '').split(delimiter).some((dir) => dir && existsSync(join(dir, 'bwrap')))
  return found ? 'bwrap' : 'none'
}

/**
 * The words that put a job in a private mount namespace, tried once: bwrap
 * makes its mounts slaves of the node's, so without this a FUSE mount made
 * after the job started (where / is shared, as systemd makes it) would reach
 * it. Root needs only a mount namespace; another user a user namespace too,
 * mapping it to itself.
 */
export function detectMountNamespace (uid = process.getuid?.() ?? -1): string[] | undefined {
  const words = ['unshare', ...(uid === 0 ? [] : ['--map-current-user']), '--mount', '--propagation', 'private', '--']
  const probe = spawnSync(words[0], [...words.slice(1), 'true'], { stdio: 'ignore', timeout: 5_000 })
  return probe.status === 0 ? words : undefined
}

/** The words that run a job inside `fence`. */
export function fenceArgs (fence: Fence, spec: FenceSpec): string[] {
  if (fence === 'bwrap') return [...(spec.mountNamespace ?? []), ...mountCheckArgs(spec), ...bwrapArgs(spec)]
  if (fence === 'sandbox-exec') return ['/usr/bin/sandbox-exec', '-p', sandboxProfile(spec)]
  return []
}

/**
 * Run in the job's own mount namespace just before bwrap: refuses to go on
 * (exit 125) if a FUSE mount is there that was not in the node's table when
 * it made the fence (one mounted in between, which the fence would not hide).
 * $1: the mount points expected, as mountinfo writes them, one a line. Plain
 * sh, no other program, so it costs a job's start next to nothing. The type
 * test is isFuseType's: the field after " - ".
 */
export const FENCE_CHECK = [
  'nl=\'',
  '\'',
  'while read -r _ _ _ _ point rest; do',
  '  case " $rest " in *" - fuse "*|*" - fuseblk "*|*" - fuse."*) ;; *) continue ;; esac',
  '  case "$nl$1$nl" in *"$nl$point$nl"*) ;; *) printf \'herds: a FUSE mount appeared at %s as the job started; run it again\\n\' "$point" >&2; exit 125 ;; esac',
  'done < /proc/self/mountinfo',
  'shift; exec "$@"',
].join('\n')

function mountCheckArgs (spec: FenceSpec): string[] {
  return ['/bin/sh', '-c', FENCE_CHECK, 'herds-fence', (spec.fuse ?? []).map((mount) => mount.raw).join('\n')]
}

/** Is `path` `dir` or below it? */
function within (path: string, dir: string): boolean {
  return dir === '/' || path === dir || path.startsWith(dir + '/')
}

/** One mount of the job's view, in the order bwrap makes them: what shows at `target`, from `source` on the node (none: made empty). */
interface Layer { target: string, source?: string, args: string[] }

/**
 * bwrap: the system read-only; only the writable folders and volumes bound;
 * Herds' state, /tmp and every FUSE mount not allowed made empty. Order
 * matters (later mounts go on top; the sandbox may live under /tmp).
 * Capabilities are dropped, so a root node does not hand jobs a way to remount
 * /, and PID, UTS and IPC namespaces keep them from the node's.
 */
export function bwrapArgs (spec: FenceSpec): string[] {
  const layers: Layer[] = [
    { target: '/', source: '/', args: ['--ro-bind', '/', '/'] },
    { target: '/dev', args: ['--dev', '/dev'] },
    // /proc is fresh and writable to root: its knobs on the host stay read-only.
    { target: '/proc', args: ['--proc', '/proc', '--ro-bind', '/proc/sys', '/proc/sys', '--ro-bind-try', '/proc/sysrq-trigger', '/proc/sysrq-trigger'] },
    { target: '/tmp', args: ['--tmpfs', '/tmp'] },
    ...spec.hidden.map((dir): Layer => ({ target: dir, args: ['--tmpfs', dir] })),
    ...spec.writable.map((dir): Layer => ({ target: dir, source: dir, args: ['--bind', dir, dir] })),
    ...spec.binds.map(([source, target]): Layer => ({ target, source, args: ['--bind', source, target] })),
  ]
  const allowed = new Set(spec.allowMounts ?? [])
  const hide = (spec.fuse ?? []).filter((mount) => !allowed.has(mount.path))
  return [
    'bwrap', '--unshare-uts', '--unshare-ipc', '--unshare-pid', '--cap-drop', 'ALL',
    ...layers.flatMap((layer, i) => [...layer.args, ...hideUnder(layer, layers.slice(i + 1), hide)]),
    ...(spec.network ? [] : ['--unshare-net']),
    '--chdir', spec.cwd,
    '--',
  ]
}

/**
 * An empty, read-only directory over each FUSE mount that `layer` brings into
 * the job's view, unless a later layer covers that place anyway (and so
 * decides what shows there) or an outer one of these already hides it.
 */
function hideUnder (layer: Layer, later: Layer[], mounts: FuseMount[]): string[] {
  const { source, target } = layer
  if (source === undefined) return []
  const places = mounts
    .filter((mount) => within(mount.path, source))
    .map((mount) => source === '/' ? mount.path : target + mount.path.slice(source.length))
    .filter((place) => !later.some((l) => within(place, l.target)))
    .sort((a, b) => a.length - b.length)
  const outer: string[] = []
  for (const place of places) if (!outer.some((dir) => within(place, dir))) outer.push(place)
  return outer.flatMap((place) => ['--tmpfs', place, '--remount-ro', place])
}

/**
 * sandbox-exec (macOS): writes denied but for the writable folders, the
 * volumes and the usual devices; Herds' state unreadable but for those
 * folders; FUSE mounts (and the usual places of a Herds mount) neither read
 * nor written; no IP networking when the config says so. The last rule that
 * matches wins. Written from Apple's profile language; not yet run on a Mac.
 */
export function sandboxProfile (spec: FenceSpec): string {
  const quote = (path: string): string => `"${path.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
  const subpaths = (dirs: string[]): string => dirs.map((dir) => `(subpath ${quote(dir)})`).join(' ')
  const writable = [...spec.writable, ...spec.binds.map(([source]) => source)]
  const allowed = new Set(spec.allowMounts ?? [])
  const mounts = [...new Set([...(spec.fuse ?? []).map((mount) => mount.path), ...(spec.usualMounts ?? [])])].filter((path) => !allowed.has(path))
  return [
    '(version 1)',
    '(allow default)',
    '(deny file-write*)',
    ...(spec.hidden.length ? [`(deny file-read* ${subpaths(spec.hidden)})`, `(allow file-read* ${subpaths(writable)})`] : []),
    `(allow file-write* ${subpaths(writable)}`,
    '  (literal "/dev/null") (literal "/dev/zero") (literal "/dev/tty") (regex #"^/dev/fd/"))',
    ...(mounts.length ? [`(deny file-read* file-write* ${subpaths(mounts)})`] : []),
    ...(spec.network ? [] : ['(deny network-outbound (remote ip))', '(deny network-inbound (local ip))']),
  ].join('\n')
}
