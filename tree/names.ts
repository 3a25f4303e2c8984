/**
 * Names users give things (nodes, jobs, sandboxes, volumes, exports): checked
 * in one place, with one message.
 */
import { HerdsError } from './errno.js'
import { splitPath } from './paths.js'
import { callOp, treeFromCall } from './peer.js'
import { RENAME_EXCHANGE, S_IFDIR, S_IFMT, type Tree } from './tree.js'
import { SafeName } from './wire.js'

/** Refuses a name that is not a safe name with EINVAL, saying what the rule is. */
export function checkName (name: string, what: string): void {
  if (!SafeName.safeParse(name).success) {
    throw new HerdsError('EINVAL', `"${name}" is not a ${what} name: use letters, digits, "_", "-" or "." (at most 64, not starting with "." or "-")`)
  }
}

/**
 * A tree whose top level holds only folders with safe names (volumes): mkdir
 * at its root refuses "..", control characters, a leading dot and the like,
 * and no file or link is made there, so a volume is always a real folder (a
 * link there would lead sandboxes that mount the volume anywhere).
 */
export function safeTopNames (inner: Tree, what: string): Tree {
  return treeFromCall(async (op, args, ctx) => {
    const target = op === 'symlink' || op === 'rename' || op === 'link' ? args[1] : args[0]
    const parts = splitPath(target as string)
    if (op === 'rename' && args[2] === RENAME_EXCHANGE && splitPath(args[0] as string).length === 1 && parts.length !== 1) {
      throw new HerdsError('EPERM', `a ${what} is a folder at the top: exchange it only with another ${what}`)
    }
    if (['mkdir', 'create', 'symlink', 'rename', 'link', 'mknod'].includes(op) && parts.length === 1) {
      checkName(parts[0]!, what)
      if (op === 'create' || op === 'symlink' || op === 'link' || op === 'mknod') throw new HerdsError('EPERM', `a ${what} is a folder: make one with mkdir, and files inside it`)
      if (op === 'rename' && ((await inner.getattr(args[0] as string, ctx)).mode & S_IFMT) !== S_IFDIR) {
        throw new HerdsError('EPERM', `a ${what} is a folder: only a folder can be moved to the top`)
      }
    }
    return callOp(inner, op, args, ctx)
  })
}
