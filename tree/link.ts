/**
 * A connection inside one process: two ends that pass each other the same
 * binary frames a WebSocket would carry, without a socket, the WebSocket's
 * framing or a system call. `herds up` links its node and its mount to its
 * host with one, so each request crosses no loopback connection (the frames
 * are still encoded and checked as on the wire: one code path for both).
 */
import { EventEmitter } from 'node:events'

/** What a Peer needs of its connection: the part of ws's WebSocket it uses, which a Link end has too. */
export interface WireSocket {
  binaryType: string
  readonly readyState: number
  readonly OPEN: number
  /** Bytes sent and not yet taken by the other side. */
  readonly bufferedAmount: number
  send (data: Buffer, opts?: { binary?: boolean }): void
  close (code?: number, reason?: string): void
  terminate (): void
  ping (): void
  pause (): void
  resume (): void
  on (event: 'message', listener: (data: Buffer, isBinary: boolean) => void): this
  on (event: 'close', listener: (code: number, reason: Buffer) => void): this
  on (event: 'open' | 'ping' | 'pong', listener: () => void): this
  on (event: 'error', listener: (err: Error) => void): this
}

const OPEN = 1
const CLOSING = 2
const CLOSED = 3

/** What waits for an end to take it: a frame, or the other end's close (after the frames it sent before). */
type Arrival = { data: Buffer } | { close: [code: number, reason: string] }

/** One end of a link. Everything it is sent arrives on the next turn of the event loop, in order. */
export class LinkEnd extends EventEmitter implements WireSocket {
  readonly OPEN = OPEN
  binaryType = 'nodebuffer'
  private state = OPEN
  private other!: LinkEnd
  private readonly inbox: Arrival[] = []
  /** Bytes of frames in the inbox: the other end's bufferedAmount. */
  private waiting = 0
  private paused = false
  private scheduled = false

  /** Connects two ends; each says 'open' on the next turn, as a WebSocket does once connected. */
  static pair (): [LinkEnd, LinkEnd] {
    const a = new LinkEnd()
    const b = new LinkEnd()
    a.other = b
    b.other = a
    setImmediate(() => { if (a.state === OPEN) a.emit('open') })
    setImmediate(() => { if (b.state === OPEN) b.emit('open') })
    return [a, b]
  }

  get readyState (): number {
    return this.state
  }

  get bufferedAmount (): number {
    return this.other.waiting
  }

  send (data: Buffer): void {
    if (this.state !== OPEN) return
    this.other.arrive({ data })
  }

  /** Closes once the other end has taken what was sent before, as the WebSocket's close handshake does. */
  close (code = 1005, reason = ''): void {
    if (this.state !== OPEN) return
    this.state = CLOSING
    this.other.arrive({ close: [code, reason] })
  }

  /** Closes both ends at once; what was not taken yet is dropped. */
  terminate (): void {
    this.end(1006, '')
  }

  ping (): void {
    if (this.state !== OPEN) return
    // ws answers a ping with a pong by itself; so does a link's other end.
    setImmediate(() => {
      if (this.other.state !== OPEN) return
      this.other.emit('ping')
      if (this.state === OPEN) this.emit('pong')
    })
  }

  /** Stops taking frames: they wait in the inbox, and the sender sees them in its bufferedAmount. */
  pause (): void {
    this.paused = true
  }

  resume (): void {
    this.paused = false
    this.schedule()
  }

  private arrive (arrival: Arrival): void {
    this.inbox.push(arrival)
    if ('data' in arrival) this.waiting += arrival.data.length
    this.schedule()
  }

  private schedule (): void {
    if (this.scheduled || this.paused || this.inbox.length === 0) return
    this.scheduled = true
    setImmediate(() => this.take())
  }

  /** Hands over what waits, in order, until paused; the other end's close last of all. */
  private take (): void {
    this.scheduled = false
    while (!this.paused && this.state !== CLOSED && this.inbox.length > 0) {
      const arrival = this.inbox.shift()!
      if ('close' in arrival) return this.end(...arrival.close)
      this.waiting -= arrival.data.length
      this.emit('message', arrival.data, true)
    }
  }

  /** Both ends are closed and say so, each once. */
  private end (code: number, reason: string): void {
    for (const end of [this, this.other]) {
      if (end.state === CLOSED) continue
      end.state = CLOSED
      end.inbox.length = 0
      end.waiting = 0
      setImmediate(() => end.emit('close', code, Buffer.from(reason)))
    }
  }
}
