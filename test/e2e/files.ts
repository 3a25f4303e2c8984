/**
 * Two ways to reach the same namespace, behind one small interface, so the
 * same assertions run through a real FUSE mount and against the remote tree
 * without FUSE.
 */
import { fsTransport, treeTransport, type Transport } from '../../mount/sdk/transport.js'
import type { Tree } from '../../tree/tree.js'

export interface Files {
  kind: string
  read (path: string): Promise<Buffer>
  write (path: string, data: string | Buffer): Promise<void>
  list (path: string): Promise<string[]>
  mkdir (path: string): Promise<void>
  remove (path: string): Promise<void>
  rename (from: string, to: string): Promise<void>
  /** Reads a file to its end, calling `onChunk` as each piece arrives; a rejection it returns ends the read. */
  stream (path: string, onChunk: (chunk: Buffer) => unknown): Promise<void>
}

/** The SDK's transports are the same operations; the tests name them their way. */
function filesOf (kind: string, files: Transport): Files {
  return {
    kind,
    read: (path) => files.read(path),
    write: (path, data) => files.write(path, data),
    list: (path) => files.list(path),
    mkdir: (path) => files.mkdir(path),
    remove: (path) => files.unlink(path),
    rename: (from, to) => files.rename(from, to),
    stream: (path, onChunk) => files.stream(path, onChunk),
  }
}

/** Plain fs on a mounted directory. */
export function fuseFiles (mountpoint: string): Files {
  return filesOf('fuse', fsTransport(mountpoint))
}

/** The remote tree over WebSocket, no FUSE. */
export function treeFiles (tree: Tree): Files {
  return filesOf('tree', treeTransport(tree))
}

/**
 * Reads a live file (a running job's stdout) until what came matches
 * `pattern`, and gives all of it; rejects when the file ends first.
 */
export async function readUntil (files: Files, path: string, pattern: RegExp): Promise<string> {
  let text = ''
  const found = new Error('found')
  let timer: NodeJS.Timeout | undefined
  // Fails here, saying what came, rather than at the suite's timeout.
  const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`no ${String(pattern)} in ${path} within 15 s; it said ${JSON.stringify(text.slice(-300))}`)), 15_000) })
  try {
    await Promise.race([late, files.stream(path, (chunk) => {
      text += chunk.toString('utf8')
      if (pattern.test(text)) return Promise.reject(found)
    })])
  } catch (err) {
    if (err === found || (err as Error).message === 'found') return text
    throw err
  } finally {
    clearTimeout(timer)
  }
  throw new Error(`${path} ended without ${String(pattern)}; it said ${JSON.stringify(text.slice(-300))}`)
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
