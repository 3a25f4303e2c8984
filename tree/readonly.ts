/**
 * A read-only view of a tree: every change is refused with EROFS and modes
 * show no write bits, so `ls -l` tells the truth.
 */
import { HerdsError } from './errno.js'
import { callOp, treeFromCall } from './peer.js'
import { mapEntryStats, wantsWrite, type DirEntry, type Op, type Stat, type Tree } from './tree.js'

/** Operations that change a tree. */
const CHANGES: ReadonlySet<Op> = new Set(['write', 'truncate', 'create', 'mkdir', 'unlink', 'rmdir', 'rename', 'link', 'symlink', 'utimens', 'chmod', 'mknod', 'setxattr', 'removexattr'])

export function readOnly (inner: Tree, what = 'this tree'): Tree {
  return treeFromCall(async (op, args, ctx) => {
    if (CHANGES.has(op) || (op === 'open' && wantsWrite(args[1] as number))) {
      throw new HerdsError('EROFS', `${what} is read-only: ${String(args[op === 'symlink' || op === 'link' ? 1 : 0])}`)
    }
    if (op === 'setlk' && args[3] === 'write') throw new HerdsError('EBADF', `a write lock needs a file open for writing, and ${what} is read-only: ${String(args[0])}`)
    const result = await callOp(inner, op, args, ctx)
    if (op === 'getattr') return { ...(result as Stat), mode: (result as Stat).mode & ~0o222 }
    if (op === 'readdirplus') return mapEntryStats(args[0] as string, result as DirEntry[], (stat) => ({ ...stat, mode: stat.mode & ~0o222 }))
    return result
  })
}
