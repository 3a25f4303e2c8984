/**
 * The handles one connection opened, so that they can all be released when
 * it goes away: a peer that vanishes mid-read leaks no file descriptor.
 */
import { treeFromCall } from './peer.js'
import type { Tree } from './tree.js'

export interface TrackedTree {
  tree: Tree
  /** Releases every handle still open through this tree. */
  releaseAll (): Promise<void>
}

export function trackHandles (inner: Tree): TrackedTree {
  const open = new Map<number, string>()
  let closed = false
  const tree = treeFromCall(async (op, args, ctx) => {
    const method = inner[op] as (...a: unknown[]) => Promise<unknown>
    if (op === 'release') open.delete(args[1] as number)
    const result = await method.call(inner, ...args, ctx)
    if (op === 'open' || op === 'create') {
      // An open that finished after its connection closed is released at once.
      if (closed) await inner.release(args[0] as string, result as number).catch(() => {})
      else open.set(result as number, args[0] as string)
    }
    return result
  })
  return {
    tree,
    releaseAll: async () => {
      closed = true
      const handles = [...open]
      open.clear()
      await Promise.all(handles.map(([fh, path]) => inner.release(path, fh).catch(() => {})))
    },
  }
}
