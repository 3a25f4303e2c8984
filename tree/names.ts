/**
 * A tree whose top-level names must be safe names (volumes): mkdir and create
 * at its root refuse "..", control characters, a leading dot and the like.
 */
import { HerdsError } from './errno.js'
import { splitPath } from './paths.js'
import { treeFromCall } from './peer.js'
import type { Tree } from './tree.js'
import { SafeName } from './wire.js'

export function safeTopNames (inner: Tree, what: string): Tree {
  return treeFromCall(async (op, args, ctx) => {
    const target = op === 'symlink' ? args[1] : op === 'rename' ? args[1] : args[0]
    const parts = splitPath(target as string)
    if (['mkdir', 'create', 'symlink', 'rename'].includes(op) && parts.length === 1 && !SafeName.safeParse(parts[0]).success) {
      throw new HerdsError('EINVAL', `"${parts[0]}" is not a ${what} name: use letters, digits, "_", "-" or "." (at most 64, not starting with "." or "-")`)
    }
    const method = inner[op] as (...a: unknown[]) => Promise<unknown>
    return method.call(inner, ...args, ctx)
  })
}
