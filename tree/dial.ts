/**
 * Dialling home: a node or a mount connects to the host, says hello, and keeps
 * the connection alive: a dead link is noticed by missed heartbeats and the
 * connection is made again with capped backoff. One connection for all calls.
 */
import { EventEmitter } from 'node:events'
import WebSocket from 'ws'
import { HerdsError } from './errno.js'
import type { WireSocket } from './link.js'
import { Peer } from './peer.js'
import type { Frame } from './wire.js'

/** The host pings every HEARTBEAT_MS; a link on which nothing arrived for 3 of them is dead. */
export const HEARTBEAT_MS = 5_000
export const DEAD_AFTER_MS = 3 * HEARTBEAT_MS
/** How often a dialler looks at when it last heard from the host. */
const WATCHDOG_MS = 1000

export interface DialOptions {
  url: string
  hello: Extract<Frame, { t: 'hello' }>
  /** Sent as "Authorization: Bearer <token>" in the upgrade. */
  token?: string
  /** Extra TLS trust for wss:// (a self-signed host's certificate, PEM). */
  ca?: Buffer
  /**
   * Trust `ca` alone and skip the host-name check: for `herds up`'s own node
   * and mount, which dial their own host on loopback with its certificate.
   */
  pinned?: boolean
  /**
   * Connects in this process instead of over `url` (`herds up`'s node and mount to its own
   * host: RunningHost.link); throws as the host would refuse the upgrade.
   */
  open?: () => WireSocket
  /** Called for each new connection after the host welcomed it. */
  onConnect?: (peer: Peer) => void
  backoff?: { minMs: number, maxMs: number }
}

/** The masking key every frame we send carries (see the WebSocket's options). */
function zeroMask (mask: Buffer): void {
  mask.fill(0)
}

export class Dialer extends EventEmitter {
  private readonly opts: DialOptions
  private stopped = false
  private attempt = 0
  private timer: NodeJS.Timeout | undefined
  /** The live connection, when there is one. */
  peer: Peer | undefined

  constructor (opts: DialOptions) {
    super()
    this.opts = opts
  }

  /**
   * Connects once and resolves when the host has welcomed us; rejects with the
   * host's refusal or the network error, so a CLI can say it in one line.
   * After that, reconnects on its own until stop().
   */
  async start (): Promise<void> {
    await this.connect()
  }

  private connect (): Promise<void> {
    return new Promise((resolve, reject) => {
      let socket: WireSocket
      try {
        socket = this.opts.open ? this.opts.open() : this.dial()
      } catch (err) {
        return reject(err)
      }
      const peer = new Peer(socket)
      let welcomed = false
      let refusal: HerdsError | undefined
      // Any byte from the host counts, not only its pings, which may be queued behind
      // the data it sends; while we hold the peer (not reading it), the silence is ours.
      let watchdog: NodeJS.Timeout | undefined
      socket.on('open', () => {
        watchdog = setInterval(() => { if (Date.now() - peer.lastHeard > DEAD_AFTER_MS) socket.terminate() }, WATCHDOG_MS)
        peer.send(this.opts.hello)
      })
      socket.on('error', (err) => { refusal ??= new HerdsError('ECONNREFUSED', `cannot reach the host at ${this.opts.url}: ${err.message}`) })
      if (socket instanceof WebSocket) {
        socket.on('upgrade', (res) => peer.listenTo(res.socket))
        // A refused token is answered before the upgrade, with HTTP 401.
        socket.on('unexpected-response', (_req, res) => {
          refusal = res.statusCode === 401
            ? new HerdsError('EACCES', `the host at ${this.opts.url} refused the token (HTTP 401): ${this.opts.token ? 'it is not known, revoked or expired' : 'none was given (--token or HERDS_TOKEN)'}`)
            : new HerdsError('EPROTO', `the host at ${this.opts.url} answered HTTP ${res.statusCode ?? '?'}: is it a Herds host?`)
          res.resume()
          socket.terminate()
        })
      }
      peer.on('frame', (frame: Frame) => {
        if (frame.t === 'welcome') {
          welcomed = true
          this.attempt = 0
          this.peer = peer
          this.opts.onConnect?.(peer)
          this.emit('connect', peer)
          resolve()
        } else if (frame.t === 'bye') {
          refusal = new HerdsError(frame.error.code, frame.error.message)
        }
      })
      peer.on('close', () => {
        clearInterval(watchdog)
        if (this.peer === peer) this.peer = undefined
        if (!welcomed) {
          reject(refusal ?? new HerdsError('ECONNREFUSED', `the host at ${this.opts.url} closed the connection`))
        } else {
          this.emit('disconnect', refusal)
        }
        // A refused or revoked token will not get better by trying again.
        if (refusal?.code === 'EACCES') {
          this.stopped = true
          if (welcomed) this.emit('fatal', refusal)
        }
        if (welcomed) this.scheduleReconnect()
      })
    })
  }

  /** A WebSocket to the host at `url`. */
  private dial (): WebSocket {
    return new WebSocket(this.opts.url, {
      perMessageDeflate: false,
      maxPayload: 64 * 1024 * 1024,
      // A zero mask: RFC 6455 allows any key, and ws then neither copies nor XORs the payload on
      // either side. Masking guards proxies against scripts in browsers; this client is no browser.
      generateMask: zeroMask,
      headers: this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {},
      ca: this.opts.ca,
      ...(this.opts.pinned && this.opts.ca ? { checkServerIdentity: () => undefined } : {}),
    })
  }

  private scheduleReconnect (): void {
    if (this.stopped) return
    const { minMs, maxMs } = this.opts.backoff ?? { minMs: 250, maxMs: 10_000 }
    const delay = Math.min(maxMs, minMs * 2 ** this.attempt++) * (0.75 + Math.random() * 0.5)
    this.timer = setTimeout(() => {
      this.connect().catch((err: HerdsError) => {
        if (err.code === 'EACCES') return this.emit('fatal', err)
        this.emit('retry', err)
        this.scheduleReconnect()
      })
    }, delay)
  }

  /** Stops reconnecting and closes the connection. */
  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
    this.peer?.socket.close(1000, 'bye')
  }
}
