/**
 * The FUSE mounts of this machine, which a sandbox job must not see (a Herds
 * mount is one, and reads the namespace with its token): from
 * /proc/self/mountinfo on Linux, from `mount` on macOS.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

export interface FuseMount {
  /** Where it is mounted, decoded. */
  path: string
  /** The mount point as the kernel lists it (\040 for a space, and so on). */
  raw: string
  /** fuse, fuseblk, fuse.<subtype> (Linux); macfuse, osxfuse (macOS). */
  type: string
  source: string
}

/** Mount types that are FUSE, on Linux. The same test is made in the fence's check (FENCE_CHECK). */
export function isFuseType (type: string): boolean {
  return type === 'fuse' || type === 'fuseblk' || type.startsWith('fuse.')
}

/** mountinfo writes space, tab, newline and backslash as \ and three octal digits. */
function decodeMountPath (raw: string): string {
  return raw.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)))
}

/**
 * The FUSE mounts in a mountinfo text: "id parent major:minor root mountpoint
 * options [optional fields…] - type source super-options" per line.
 */
export function parseMountinfo (text: string): FuseMount[] {
  const mounts: FuseMount[] = []
  for (const line of text.split('\n')) {
    const fields = line.split(' ')
    const dash = fields.indexOf('-', 6)
    if (fields.length < 7 || dash < 0 || dash + 2 >= fields.length) continue
    const type = fields[dash + 1]
    if (!isFuseType(type)) continue
    mounts.push({ path: decodeMountPath(fields[4]), raw: fields[4], type, source: decodeMountPath(fields[dash + 2]) })
  }
  return mounts
}

/** macOS `mount` lines: "<source> on <path> (<type>, <options>…)". */
export function parseMacMounts (text: string): FuseMount[] {
  const mounts: FuseMount[] = []
  for (const line of text.split('\n')) {
    const match = line.match(/^(.*?) on (\/.*) \(([^,()]+)(?:,[^()]*)?\)$/)
    // macFUSE and osxfuse by type; FUSE-T serves its file systems as NFS from "fuse-t:/…".
    if (!match || !(/fuse/i.test(match[3]) || match[1].startsWith('fuse-t:'))) continue
    mounts.push({ path: match[2], raw: match[2], type: match[3], source: match[1] })
  }
  return mounts
}

/**
 * The FUSE mounts of this machine now. On Linux a mount table that cannot be
 * read throws (the job is refused rather than started blind); on macOS the
 * profile still denies the usual places (MAC_MOUNT_PLACES) without it.
 */
export function fuseMounts (platform: NodeJS.Platform = process.platform): FuseMount[] {
  if (platform === 'linux') return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'))
  if (platform !== 'darwin') return []
  try {
    return parseMacMounts(execFileSync('/sbin/mount', { encoding: 'utf8', timeout: 5_000 }))
  } catch {
    return []
  }
}

/** Does this mount look like a Herds mount (which no sandbox may be allowed to see)? */
export function isHerdsMount (mount: FuseMount): boolean {
  return mount.type === 'fuse.herds' || mount.source === 'herds' || mount.source.startsWith('herds@')
}
