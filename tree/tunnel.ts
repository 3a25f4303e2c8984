/**
 * A TCP connection to a server on a node, as a Duplex stream made of file
 * operations on the node's ports/ folder (venoms/ports): read `new`, then
 * read and write `data`. herds forward, the SDK and the host's exposed ports
 * all go through it, over whichever way they reach the files.
 *
 * One read is in flight at a time, and the next is asked for only when the
 * consumer has taken the last (the stream's own backpressure), so a slow
 * consumer slows its own connection and no other.
 */
import { Duplex } from 'node:stream'
import { HerdsError, toHerdsError } from './errno.js'
import { O_RDONLY, O_RDWR, O_WRONLY, type Tree } from './tree.js'

/** Bytes asked for by each read of `data`. */
export const TUNNEL_READ = 256 * 1024

/** An open `data` file. */
export interface DataFile {
  read (length: number, signal: AbortSignal): Promise<Uint8Array>
  write (data: Uint8Array): Promise<void>
  close (): Promise<void>
}

/** The three file operations a tunnel needs, on namespace paths. */
export interface TunnelFiles {
  /** The whole of a small file (`new`). */
  readText (path: string): Promise<string>
  openData (path: string): Promise<DataFile>
  /** Writes a whole action file (`ctl`) and closes it, so it acts. */
  writeText (path: string, text: string): Promise<void>
}

/**
 * Connects to the server behind `portDir` (e.g. /nodes/studio/ports/8080)
 * and gives the connection as a stream. Ending the stream's writable side
 * sends `eof` (the server reads its end); destroying it closes the connection.
 */
export async function openTunnel (files: TunnelFiles, portDir: string): Promise<Duplex> {
  const id = (await files.readText(`${portDir}/new`)).trim()
  if (!/^\d+$/.test(id)) throw new HerdsError('EIO', `${portDir}/new gave no connection id`)
  const dir = `${portDir}/${id}`
  const data = await files.openData(`${dir}/data`)
  const reading = new AbortController()
  let pulling = false
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    reading.abort()
    // close first: it ends a read still waiting on the node, through a mount as well.
    await files.writeText(`${dir}/ctl`, 'close\n').catch(() => {})
    await data.close().catch(() => {})
  }
  const stream: Duplex = new Duplex({
    allowHalfOpen: true,
    read () {
      if (pulling) return
      pulling = true
      const pull = async (): Promise<void> => {
        try {
          for (;;) {
            const chunk = await data.read(TUNNEL_READ, reading.signal)
            if (chunk.length === 0) { stream.push(null); return }
            if (!stream.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))) return
          }
        } catch (err) {
          if (!closed) stream.destroy(toHerdsError(err))
        } finally {
          pulling = false
        }
      }
      void pull()
    },
    write (chunk: Buffer, _encoding, done) {
      data.write(chunk).then(() => done(), (err: unknown) => done(toHerdsError(err)))
    },
    final (done) {
      files.writeText(`${dir}/ctl`, 'eof\n').then(() => done(), (err: unknown) => done(toHerdsError(err)))
    },
    destroy (err, done) {
      close().then(() => done(err), () => done(err))
    },
  })
  // Both sides done: the connection is no longer needed.
  let ends = 0
  const ended = (): void => { if (++ends === 2) stream.destroy() }
  stream.once('end', ended)
  stream.once('finish', ended)
  return stream
}

/** TunnelFiles over a Tree (the host's namespace, or a remote tree from connectHost). */
export function treeTunnelFiles (tree: Tree): TunnelFiles {
  return {
    readText: async (path) => {
      const fh = await tree.open(path, O_RDONLY)
      try {
        const chunks: Buffer[] = []
        for (let offset = 0; ;) {
          const chunk = await tree.read(path, fh, offset, 4096)
          if (chunk.length === 0) return Buffer.concat(chunks).toString('utf8')
          chunks.push(Buffer.from(chunk))
          offset += chunk.length
          if (offset > 64 * 1024) throw new HerdsError('EFBIG', `${path} is longer than expected`)
        }
      } finally {
        await tree.release(path, fh).catch(() => {})
      }
    },
    openData: async (path) => {
      const fh = await tree.open(path, O_RDWR)
      return {
        read: (length, signal) => tree.read(path, fh, 0, length, { signal }),
        write: async (bytes) => {
          for (let done = 0; done < bytes.length;) done += await tree.write(path, fh, 0, bytes.subarray(done))
        },
        close: () => tree.release(path, fh),
      }
    },
    writeText: async (path, text) => {
      const fh = await tree.open(path, O_WRONLY)
      try {
        await tree.write(path, fh, 0, Buffer.from(text))
        await tree.flush(path, fh)
      } finally {
        await tree.release(path, fh).catch(() => {})
      }
    },
  }
}
