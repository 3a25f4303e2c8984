/**
 * The two ways the SDK reaches a namespace, behind one small set of file
 * operations: the remote tree over WebSocket (no mount needed), or plain fs on
 * a mounted directory. Everything the SDK does is one of these, so a shell
 * can do it too.
 */
import { createReadStream } from 'node:fs'
import { appendFile, mkdir, open, readdir, readFile, rename, rmdir, stat, unlink, writeFile } from 'node:fs/promises'
import { join, posix } from 'node:path'
import type { Duplex } from 'node:stream'
import { readWhole, writeWhole } from '../../tree/bind.js'
import { toHerdsError } from '../../tree/errno.js'
import { O_APPEND, O_RDONLY, O_WRONLY, S_IFDIR, S_IFMT, type Tree } from '../../tree/tree.js'
import { openTunnel, treeTunnelFiles, type TunnelFiles } from '../../tree/tunnel.js'

export interface FileStat {
  directory: boolean
  size: number
  mode: number
  mtimeMs: number
}

/** File operations on namespace paths ("/nodes/studio/exec/cmd"). Errors are HerdsErrors. */
export interface Transport {
  read (path: string): Promise<Buffer>
  /**
   * Reads at most `length` bytes from `offset` (fewer at the end). A live file
   * such as a running job's stdout waits for more; over the wire, `waitMs`
   * bounds that wait and gives what came (a mount's read waits as `cat` does).
   */
  readAt (path: string, offset: number, length: number, opts?: { waitMs?: number }): Promise<Buffer>
  /** Writes a whole file as `>` does: created if missing, emptied first, acted on at close. */
  write (path: string, data: string | Uint8Array): Promise<void>
  /** Adds to the end of a file as `>>` does: created if missing. */
  append (path: string, data: string | Uint8Array): Promise<void>
  /**
   * Reads a file to its end from `from` (0), calling `onChunk` as each piece
   * arrives (live output); a promise it returns is waited for before the next read.
   */
  stream (path: string, onChunk: (chunk: Buffer) => unknown, signal?: AbortSignal, from?: number): Promise<void>
  /**
   * Opens a file to write to its end, one request a write, for many small
   * writes (keystrokes to a terminal job's stdin). Each write is acted on as
   * it arrives; close when done.
   */
  openAppend (path: string): Promise<Appender>
  /**
   * Connects to the server behind a ports/<port> folder
   * (/nodes/studio/ports/8080) and gives the connection as a stream.
   */
  connect (portDir: string): Promise<Duplex>
  list (path: string): Promise<string[]>
  stat (path: string): Promise<FileStat>
  mkdir (path: string): Promise<void>
  rmdir (path: string): Promise<void>
  unlink (path: string): Promise<void>
  rename (from: string, to: string): Promise<void>
  close (): void
}

/** A file held open for writing at its end (Transport.openAppend). */
export interface Appender {
  /** Writes all of `data`, in the order of the calls. */
  write (data: Uint8Array): Promise<void>
  close (): Promise<void>
}

/** Turns whatever a call threw into a HerdsError (fs errors carry their errno name already). */
async function mapped<T> (work: Promise<T>): Promise<T> {
  try {
    return await work
  } catch (err) {
    throw toHerdsError(err)
  }
}

const bytesOf = (data: string | Uint8Array): Uint8Array => typeof data === 'string' ? Buffer.from(data) : data

/** A file's bytes from `offset`, read in pieces until `length`, its end, or `waitMs` (what came by then). */
async function readRange (tree: Tree, path: string, offset: number, length: number, waitMs?: number): Promise<Buffer> {
  const fh = await tree.open(path, O_RDONLY)
  const chunks: Buffer[] = []
  const signal = waitMs === undefined ? undefined : AbortSignal.timeout(waitMs)
  try {
    for (let got = 0; got < length;) {
      const chunk = await tree.read(path, fh, offset + got, Math.min(128 * 1024, length - got), { signal }).catch((err: unknown) => {
        if (signal?.aborted) return new Uint8Array(0)
        throw err
      })
      if (chunk.length === 0) break
      chunks.push(Buffer.from(chunk))
      got += chunk.length
    }
  } finally {
    await tree.release(path, fh).catch(() => {})
  }
  return Buffer.concat(chunks)
}

/** Appends through an O_APPEND handle, so the node puts each piece at the end. */
async function appendTo (tree: Tree, path: string, data: Uint8Array): Promise<void> {
  const exists = await tree.getattr(path).then(() => true, () => false)
  if (!exists) await tree.release(path, (await tree.create(path, 0o644)).fh)
  const fh = await tree.open(path, O_WRONLY | O_APPEND)
  try {
    for (let done = 0; done < data.length;) done += await tree.write(path, fh, 0, data.subarray(done, done + 1024 * 1024))
    await tree.flush(path, fh)
  } finally {
    await tree.release(path, fh).catch(() => {})
  }
}

/** The namespace over the wire: a remote tree from connectHost. */
export function treeTransport (tree: Tree, close: () => void = () => {}): Transport {
  return {
    read: (path) => mapped(readWhole(tree, path)),
    readAt: (path, offset, length, opts) => mapped(readRange(tree, path, offset, length, opts?.waitMs)),
    write: (path, data) => mapped((async () => {
      // As open(O_CREAT|O_TRUNC) does: create a missing file, empty an existing one.
      const exists = await tree.getattr(path).then(() => true, () => false)
      if (!exists) await tree.release(path, (await tree.create(path, 0o644)).fh)
      else await tree.truncate(path, 0)
      await writeWhole(tree, path, bytesOf(data))
    })()),
    append: (path, data) => mapped(appendTo(tree, path, bytesOf(data))),
    stream: (path, onChunk, signal, from = 0) => mapped((async () => {
      const fh = await tree.open(path, O_RDONLY, { signal })
      try {
        for (let offset = from; ;) {
          const chunk = await tree.read(path, fh, offset, 128 * 1024, { signal })
          if (chunk.length === 0) return
          await onChunk(Buffer.from(chunk))
          offset += chunk.length
        }
      } finally {
        await tree.release(path, fh).catch(() => {})
      }
    })()),
    openAppend: (path) => mapped((async () => {
      const fh = await tree.open(path, O_WRONLY | O_APPEND)
      return {
        write: (data) => mapped((async () => {
          for (let done = 0; done < data.length;) done += await tree.write(path, fh, 0, data.subarray(done))
        })()),
        close: () => mapped(tree.release(path, fh)),
      }
    })()),
    connect: (portDir) => mapped(openTunnel(treeTunnelFiles(tree), portDir)),
    list: (path) => mapped(tree.readdir(path)),
    stat: (path) => mapped(tree.getattr(path).then((s) => ({ directory: (s.mode & S_IFMT) === S_IFDIR, size: s.size, mode: s.mode & 0o7777, mtimeMs: s.mtimeMs }))),
    mkdir: (path) => mapped(tree.mkdir(path, 0o755)),
    rmdir: (path) => mapped(tree.rmdir(path)),
    unlink: (path) => mapped(tree.unlink(path)),
    rename: (from, to) => mapped(tree.rename(from, to)),
    close,
  }
}

/** The namespace through a FUSE mount: plain fs calls under `mountpoint`. */
export function fsTransport (mountpoint: string): Transport {
  // Normalised from the root, so no "..", however many, climbs out of the mount.
  const at = (path: string): string => join(mountpoint, posix.normalize('/' + path))
  return {
    read: (path) => mapped(readFile(at(path))),
    readAt: (path, offset, length) => mapped((async () => {
      const file = await open(at(path), 'r')
      try {
        const buf = Buffer.alloc(length)
        let got = 0
        while (got < length) {
          const { bytesRead } = await file.read(buf, got, length - got, offset + got)
          if (bytesRead === 0) break
          got += bytesRead
        }
        return buf.subarray(0, got)
      } finally {
        await file.close()
      }
    })()),
    write: (path, data) => mapped(writeFile(at(path), data)),
    append: (path, data) => mapped(appendFile(at(path), data)),
    stream: (path, onChunk, signal, from = 0) => mapped(new Promise<void>((resolve, reject) => {
      const stream = createReadStream(at(path), { highWaterMark: 128 * 1024, signal, start: from })
      stream.on('data', (chunk) => {
        const taken = onChunk(chunk as Buffer)
        if (taken instanceof Promise) { stream.pause(); taken.then(() => stream.resume(), (err: unknown) => { stream.destroy(); reject(err) }) }
      }).on('end', resolve).on('error', reject)
    })),
    openAppend: (path) => mapped((async () => {
      const file = await open(at(path), 'a')
      return {
        write: (data) => mapped((async () => {
          for (let done = 0; done < data.length;) done += (await file.write(data, done)).bytesWritten
        })()),
        close: () => mapped(file.close()),
      }
    })()),
    connect: (portDir) => mapped(openTunnel(fsTunnelFiles(at), portDir)),
    list: (path) => mapped(readdir(at(path))),
    stat: (path) => mapped(stat(at(path)).then((s) => ({ directory: s.isDirectory(), size: s.size, mode: s.mode & 0o7777, mtimeMs: s.mtimeMs }))),
    mkdir: (path) => mapped(mkdir(at(path))),
    rmdir: (path) => mapped(rmdir(at(path))),
    unlink: (path) => mapped(unlink(at(path))),
    rename: (from, to) => mapped(rename(at(from), at(to))),
    close: () => {},
  }
}


/**
 * TunnelFiles through a mount. Each waiting read of `data` holds one of
 * libuv's threads (4 unless UV_THREADPOOL_SIZE says more), so a program with
 * many connections at once is better served by Herds.connect.
 */
function fsTunnelFiles (at: (path: string) => string): TunnelFiles {
  return {
    readText: async (path) => (await readFile(at(path))).toString('utf8'),
    openData: async (path) => {
      const file = await open(at(path), 'r+')
      return {
        read: async (length) => {
          const buf = Buffer.alloc(length)
          const { bytesRead } = await file.read(buf, 0, length, null)
          return buf.subarray(0, bytesRead)
        },
        write: async (data) => {
          for (let done = 0; done < data.length;) done += (await file.write(data, done, data.length - done, null)).bytesWritten
        },
        close: () => file.close(),
      }
    },
    writeText: (path, text) => writeFile(at(path), text),
  }
}
