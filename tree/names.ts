/**
 * Names users give things (nodes, jobs, sandboxes, volumes, exports): checked
 * in one place, with one message.
 */
import { HerdsError } from './errno.js'
import { splitPath } from './paths.js'
import { callOp, treeFromCall } from './peer.js'
import type { Tree } from './tree.js'
import { SafeName } from './wire.js'

/** Refuses a name that is not a safe name with EINVAL, saying what the rule is. */
export function checkName (name: string, what: string): void {
  if (!SafeName.safeParse(name).success) {
    throw new HerdsError('EINVAL', `"${name}" is not a ${what} name: use letters, digits, "_", "-" or "." (at most 64, not starting with "." or "-")`)
  }
}

/**
 * A tree whose top-level names must be safe names (volumes): mkdir and create
 * at its root refuse "..", control characters, a leading dot and the like.
 */
export function safeTopNames (inner: Tree, what: string): Tree {
  return treeFromCall(async (op, args, ctx) => {
    const target = op === 'symlink' ? args[1] : op === 'rename' ? args[1] : args[0]
    const parts = splitPath(target as string)
    if (['mkdir', 'create', 'symlink', 'rename'].includes(op) && parts.length === 1) checkName(parts[0], what)
    return callOp(inner, op, args, ctx)
  })
}
