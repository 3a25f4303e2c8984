/** Binding: a tree seen from one of its directories (Plan 9's bind), and whole-file helpers. */
import type { CallContext, Tree } from './tree.js'
import { joinPath, splitPath } from './paths.js'
import { OP_ARGS, OPS, PATH_ARGS } from './wire.js'

/** The part of `tree` below `dir`, as a tree of its own. */
export function subtree (tree: Tree, dir: string): Tree {
  const base = splitPath(dir)
  const bound: Record<string, unknown> = {}
  for (const op of OPS) {
    const arity = OP_ARGS[op].def.items.length
    bound[op] = (...args: unknown[]) => {
      const mapped = args.slice(0, arity)
      for (const i of PATH_ARGS[op]) mapped[i] = joinPath([...base, ...splitPath(mapped[i] as string)])
      const method = tree[op] as (...a: unknown[]) => Promise<unknown>
      return method.call(tree, ...mapped, args[arity] as CallContext | undefined)
    }
  }
  return bound as unknown as Tree
}

/** Reads a whole file through the Tree interface (open, read to EOF, release). */
export async function readWhole (tree: Tree, path: string, ctx?: CallContext): Promise<Buffer> {
  const fh = await tree.open(path, 0, ctx)
  const chunks: Buffer[] = []
  try {
    for (let offset = 0; ;) {
      const chunk = await tree.read(path, fh, offset, 128 * 1024, ctx)
      if (chunk.length === 0) break
      chunks.push(Buffer.from(chunk))
      offset += chunk.length
    }
  } finally {
    await tree.release(path, fh).catch(() => {})
  }
  return Buffer.concat(chunks)
}

/** Writes a whole file through the Tree interface; the close (flush) error is the write's error. */
export async function writeWhole (tree: Tree, path: string, data: Uint8Array, ctx?: CallContext): Promise<void> {
  const fh = await tree.open(path, 1, ctx)
  try {
    for (let offset = 0; offset < data.length;) {
      offset += await tree.write(path, fh, offset, data.subarray(offset, offset + 1024 * 1024), ctx)
    }
    await tree.flush(path, fh, ctx)
  } finally {
    await tree.release(path, fh).catch(() => {})
  }
}
