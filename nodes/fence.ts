/**
 * Write fences for sandbox jobs, where the OS offers one: bwrap on Linux,
 * sandbox-exec on macOS. Each turns a description of what a job may write
 * into the words put before its shell.
 */
import { existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'

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
}

/** The write fence this machine offers. */
export function detectFence (platform: NodeJS.Platform = process.platform): Fence {
  if (platform === 'darwin') return existsSync('/usr/bin/sandbox-exec') ? 'sandbox-exec' : 'none'
  if (platform !== 'linux') return 'none'
  const found = (process.env.PATH ?? '').split(delimiter).some((dir) => dir && existsSync(join(dir, 'bwrap')))
  return found ? 'bwrap' : 'none'
}

/** The words that run a job inside `fence`. */
export function fenceArgs (fence: Fence, spec: FenceSpec): string[] {
  if (fence === 'bwrap') return bwrapArgs(spec)
  if (fence === 'sandbox-exec') return ['/usr/bin/sandbox-exec', '-p', sandboxProfile(spec)]
  return []
}

/**
 * bwrap: the system read-only; only the writable folders and volumes bound.
 * Order matters (later mounts go on top; the sandbox may live under /tmp).
 * Capabilities are dropped, so a root node does not hand jobs a way to remount
 * /, and PID, UTS and IPC namespaces keep them from the node's.
 */
export function bwrapArgs (spec: FenceSpec): string[] {
  return [
    'bwrap', '--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp',
    // /proc is fresh and writable to root: its knobs on the host stay read-only.
    '--ro-bind', '/proc/sys', '/proc/sys', '--ro-bind-try', '/proc/sysrq-trigger', '/proc/sysrq-trigger',
    '--unshare-uts', '--unshare-ipc',
    ...spec.hidden.flatMap((dir) => ['--tmpfs', dir]),
    ...spec.writable.flatMap((dir) => ['--bind', dir, dir]),
    '--unshare-pid', '--cap-drop', 'ALL',
    ...spec.binds.flatMap(([source, target]) => ['--bind', source, target]),
    ...(spec.network ? [] : ['--unshare-net']),
    '--chdir', spec.cwd,
    '--',
  ]
}

/**
 * sandbox-exec (macOS): writes denied but for the writable folders, the
 * volumes and the usual devices; no IP networking when the config says so.
 * Written from Apple's profile language; not yet run on a Mac here.
 */
export function sandboxProfile (spec: FenceSpec): string {
  const quote = (path: string): string => `"${path.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
  const writable = [...spec.writable, ...spec.binds.map(([source]) => source)]
  return [
    '(version 1)',
    '(allow default)',
    '(deny file-write*)',
    ...(spec.hidden.length ? [`(deny file-read* ${spec.hidden.map((dir) => `(subpath ${quote(dir)})`).join(' ')})`, `(allow file-read* ${writable.map((dir) => `(subpath ${quote(dir)})`).join(' ')})`] : []),
    `(allow file-write* ${writable.map((dir) => `(subpath ${quote(dir)})`).join(' ')}`,
    '  (literal "/dev/null") (literal "/dev/zero") (literal "/dev/tty") (regex #"^/dev/fd/"))',
    ...(spec.network ? [] : ['(deny network-outbound (remote ip))', '(deny network-inbound (local ip))']),
  ].join('\n')
}
