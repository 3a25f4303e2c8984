/** Whole-file helpers over the Tree interface. */
import type { CallContext, Tree } from './tree.js'

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
