/**
 * A mount other users of the machine may use (--allow-other): the kernel then
 * checks each caller against the modes shown (default_permissions), with every
 * file owned by the mount's user. Files of local trees keep the node's modes,
 * as on a shared disk; computed files (commands, control) lose group and other
 * write, so only the mount's user starts jobs or changes the host with its token.
 */
import { existsSync, readFileSync } from 'node:fs'
import { HerdsError } from '../tree/errno.js'
import { isRealFile } from './cache.js'

/** The libfuse options that share a mount. */
export const SHARED_OPTIONS = ['allow_other', 'default_permissions']

/** The mode a shared mount shows for `path`. */
export function sharedMode (path: string, mode: number): number {
  return isRealFile(path) ? mode : mode & ~0o022
}

/**
 * Refuses at once, in words a user can act on, where fusermount would: a user
 * other than root may share a mount only if /etc/fuse.conf says user_allow_other.
 */
export function checkAllowOther (uid = process.getuid?.() ?? 0, conf = '/etc/fuse.conf'): void {
  if (uid === 0 || process.platform === 'darwin') return
  const text = existsSync(conf) ? readFileSync(conf, 'utf8') : ''
  if (/^\s*user_allow_other\s*$/m.test(text)) return
  throw new HerdsError('EPERM', `--allow-other needs the line user_allow_other in ${conf} (add it as root), or run the mount as root`)
}
