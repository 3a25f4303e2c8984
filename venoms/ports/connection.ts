/**
 * One TCP connection a node made to a server of its own for a client (herds
 * forward, a port the host exposes). The server's bytes wait here for the
 * client's reads, at most MAX_BUFFERED of them: past that the socket is
 * paused, so a slow reader slows its own server and no one else. The
 * client's bytes go to the socket as they come; a write is answered when the
 * socket has taken it.
 */
import { connect, type Socket } from 'node:net'
import { HerdsError, toHerdsError } from '../../tree/errno.js'

/** The server's bytes held for a reader that is behind, at most; the socket is paused past it. */
export const MAX_BUFFERED = 1024 * 1024
/** How long a connect may take before the client is told. */
export const CONNECT_TIMEOUT_MS = 10_000

/** Opens a TCP connection to a port of this machine (a side effect, so tests can put a fault in its place). */
export type Dial = (port: number) => Socket
export const dialLoopback: Dial = (port) => connect({ host: '127.0.0.1', port })

export type ConnectionState = 'open' | 'closing' | 'closed'

export class PortConnection {
  readonly id: string
  readonly port: number
  readonly openedAt = new Date().toISOString()
  /** Bytes from the server, and to it. */
  bytesIn = 0
  bytesOut = 0
  private readonly socket: Socket
  private chunks: Buffer[] = []
  private buffered = 0
  /** The server ended its side: reads give what is held, then the end. */
  private ended = false
  private failure: HerdsError | undefined
  private closed = false
  private readonly wakers = new Set<() => void>()
  private readonly onClose: () => void

  private constructor (id: string, port: number, socket: Socket, onClose: () => void) {
    this.id = id
    this.port = port
    this.socket = socket
    this.onClose = onClose
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk)
      this.buffered += chunk.length
      this.bytesIn += chunk.length
      if (this.buffered >= MAX_BUFFERED) socket.pause()
      this.wake()
    })
    socket.on('end', () => { this.ended = true; this.wake() })
    socket.on('error', (err) => { this.failure ??= socketError(err, port); this.wake() })
    socket.on('close', () => { this.ended = true; this.wake() })
  }

  /** Connects to `port`; ECONNREFUSED when nothing listens there, ETIMEDOUT when nothing answers. */
  static open (dial: Dial, port: number, id: string, onClose: () => void): Promise<PortConnection> {
    return new Promise((resolve, reject) => {
      const socket = dial(port)
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new HerdsError('ETIMEDOUT', `port ${port} on this node did not answer within ${CONNECT_TIMEOUT_MS / 1000} s`))
      }, CONNECT_TIMEOUT_MS)
      socket.once('connect', () => {
        clearTimeout(timer)
        socket.removeListener('error', refused)
        socket.setNoDelay(true)
        resolve(new PortConnection(id, port, socket, onClose))
      })
      const refused = (err: Error): void => {
        clearTimeout(timer)
        socket.destroy()
        reject(socketError(err, port))
      }
      socket.once('error', refused)
    })
  }

  get state (): ConnectionState {
    if (this.closed) return 'closed'
    return this.ended || this.failure ? 'closing' : 'open'
  }

  /** Up to `length` of the server's bytes; waits for some; empty at the end. ECANCELED when the reader goes away. */
  async read (length: number, signal?: AbortSignal): Promise<Uint8Array> {
    for (;;) {
      if (this.chunks.length > 0) return this.take(length)
      if (this.failure) throw this.failure
      if (this.ended || this.closed) return new Uint8Array(0)
      await this.waitForMore(signal)
    }
  }

  /** Sends bytes to the server; resolves when its socket has taken them (so a slow server slows its own writer). */
  write (data: Uint8Array): Promise<number> {
    if (this.failure) return Promise.reject(this.failure)
    if (this.closed || this.socket.writableEnded || this.socket.destroyed) return Promise.reject(new HerdsError('EPIPE', `the connection to port ${this.port} is closed for writing`))
    const copy = Buffer.from(data) // the caller's buffer may be reused once we return
    return new Promise((resolve, reject) => {
      this.socket.write(copy, (err) => {
        if (err) return reject(socketError(err, this.port))
        this.bytesOut += copy.length
        resolve(copy.length)
      })
    })
  }

  /** The client's end of input: the server reads its end, and may go on answering. */
  shut (): void {
    if (!this.closed) this.socket.end()
  }

  /** Closes the connection at once, whatever is held; readers get the end. */
  close (): void {
    if (this.closed) return
    this.closed = true
    this.socket.destroy()
    this.chunks = []
    this.buffered = 0
    this.wake()
    this.onClose()
  }

  private take (length: number): Buffer {
    const parts: Buffer[] = []
    let got = 0
    while (got < length && this.chunks.length > 0) {
      const first = this.chunks[0]
      const piece = first.length <= length - got ? first : first.subarray(0, length - got)
      if (piece === first) this.chunks.shift()
      else this.chunks[0] = first.subarray(piece.length)
      parts.push(piece)
      got += piece.length
    }
    this.buffered -= got
    if (this.buffered < MAX_BUFFERED && this.socket.isPaused()) this.socket.resume()
    return parts.length === 1 ? parts[0] : Buffer.concat(parts)
  }

  private wake (): void {
    for (const wake of this.wakers) wake()
    this.wakers.clear()
  }

  private waitForMore (signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new HerdsError('ECANCELED', 'cancelled'))
      const abort = (): void => { this.wakers.delete(done); reject(new HerdsError('ECANCELED', 'cancelled')) }
      const done = (): void => { signal?.removeEventListener('abort', abort); resolve() }
      this.wakers.add(done)
      signal?.addEventListener('abort', abort, { once: true })
    })
  }
}

/** A socket's error in words the client can act on. */
function socketError (err: Error, port: number): HerdsError {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ECONNREFUSED') return new HerdsError('ECONNREFUSED', `nothing listens on port ${port} on this node (start the server first, on 127.0.0.1 or 0.0.0.0)`)
  if (code === 'ECONNRESET') return new HerdsError('EPIPE', `the server on port ${port} reset the connection`)
  if (code === 'EPIPE') return new HerdsError('EPIPE', `the server on port ${port} closed the connection`)
  const error = toHerdsError(err)
  return new HerdsError(error.code, `port ${port}: ${error.message}`)
}
