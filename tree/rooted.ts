/** A folder of a tree, served as a tree of its own (a Plan 9 bind of a subdirectory). */
import { callOp, treeFromCall } from './peer.js'
import type { Op, Tree } from './tree.js'

/** Which arguments of an operation are paths (symlink's first is the link's content, not a path). */
const PATH_ARGS: Partial<Record<Op, number[]>> = { symlink: [1], rename: [0, 1], link: [0, 1] }

/** `inner`'s folder `prefix` ("/exec") as a tree whose root is that folder. */
export function rooted (inner: Tree, prefix: string): Tree {
  return treeFromCall((op, args, ctx) => {
    const moved = [...args]
    for (const i of PATH_ARGS[op] ?? [0]) moved[i] = args[i] === '/' ? prefix : prefix + (args[i] as string)
    return callOp(inner, op, moved, ctx)
  })
}
