/**
 * Two ways to reach the same namespace, behind one small interface, so the
 * same assertions run through a real FUSE mount and against the remote tree
 * without FUSE.
 */
import { createReadStream } from 'node:fs'
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { readWhole, writeWhole } from '../../tree/bind.js'
import { S_IFMT, S_IFREG, type Tree } from '../../tree/tree.js'

export interface Files {
  kind: string
  read (path: string): Promise<Buffer>
  write (path: string, data: string | Buffer): Promise<void>
  list (path: string): Promise<string[]>
  mkdir (path: string): Promise<void>
  remove (path: string): Promise<void>
  rename (from: string, to: string): Promise<void>
  /** Reads a file to its end, calling `onChunk` as each piece arrives. */
  stream (path: string, onChunk: (chunk: Buffer) => void): Promise<void>
}

/** Plain fs on a mounted directory. */
export function fuseFiles (mountpoint: string): Files {
  const at = (path: string): string => join(mountpoint, path)
  return {
    kind: 'fuse',
    read: (path) => readFile(at(path)),
    write: (path, data) => writeFile(at(path), data),
    list: (path) => readdir(at(path)),
    mkdir: (path) => mkdir(at(path)),
    remove: (path) => rm(at(path)),
    rename: (from, to) => rename(at(from), at(to)),
    stream: (path, onChunk) => new Promise((resolve, reject) => {
      createReadStream(at(path)).on('data', (chunk) => onChunk(chunk as Buffer)).on('end', resolve).on('error', reject)
    }),
  }
}

/** The remote tree over WebSocket, no FUSE. */
export function treeFiles (tree: Tree): Files {
  return {
    kind: 'tree',
    read: (path) => readWhole(tree, path),
    write: async (path, data) => {
      // As open(O_CREAT|O_TRUNC) does: create a missing file, empty a regular one.
      const exists = await tree.getattr(path).then((s) => (s.mode & S_IFMT) === S_IFREG, () => false)
      if (!exists) await tree.release(path, await tree.create(path, 0o644).catch(() => 0)).catch(() => {})
      else if (!path.includes('/exec/')) await tree.truncate(path, 0)
      await writeWhole(tree, path, typeof data === 'string' ? Buffer.from(data) : data)
    },
    list: (path) => tree.readdir(path),
    mkdir: (path) => tree.mkdir(path, 0o755),
    remove: (path) => tree.unlink(path),
    rename: (from, to) => tree.rename(from, to),
    stream: async (path, onChunk) => {
      const fh = await tree.open(path, 0)
      try {
        for (let offset = 0; ;) {
          const chunk = await tree.read(path, fh, offset, 64 * 1024)
          if (chunk.length === 0) return
          onChunk(Buffer.from(chunk))
          offset += chunk.length
        }
      } finally {
        await tree.release(path, fh)
      }
    },
  }
}

/** The errno name a failed promise carried, or 'none'. */
export async function errnoOf (promise: Promise<unknown>): Promise<string> {
  try {
    await promise
    return 'none'
  } catch (err) {
    return String((err as { code?: string }).code)
  }
}
