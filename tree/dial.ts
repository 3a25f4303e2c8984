/**
 * Dialling home: a node or a mount connects to the host, says hello, and keeps
 * the connection alive: a dead link is noticed by missed heartbeats and the
 * connection is made again with capped backoff. One connection for all calls.
 */
import { EventEmitter } from 'node:events'
import WebSocket from 'ws'
import { HerdsError } from './errno.js'
import { Peer } from './peer.js'
import type { Frame } from './wire.js'

/** The host pings every HEARTBEAT_MS; a peer silent for 3 of them is dead. */
export const HEARTBEAT_MS = 5_000
export const DEAD_AFTER_MS = 3 * HEARTBEAT_MS

export interface DialOptions {
  url: string
  hello: Extract<Frame, { t: 'hello' }>
  /** Called for each new connection after the host welcomed it. */
  onConnect?: (peer: Peer) => void
  backoff?: { minMs: number, maxMs: number }
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
      const socket = new WebSocket(this.opts.url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 })
      const peer = new Peer(socket)
      let welcomed = false
      let refusal: HerdsError | undefined
      let watchdog: NodeJS.Timeout | undefined
      const feed = (): void => {
        clearTimeout(watchdog)
        watchdog = setTimeout(() => socket.terminate(), DEAD_AFTER_MS)
      }
      socket.on('open', () => { feed(); peer.send(this.opts.hello) })
      socket.on('ping', feed)
      socket.on('error', (err) => { refusal ??= new HerdsError('ECONNREFUSED', `cannot reach the host at ${this.opts.url}: ${err.message}`) })
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
        clearTimeout(watchdog)
        if (this.peer === peer) this.peer = undefined
        if (!welcomed) {
          reject(refusal ?? new HerdsError('ECONNREFUSED', `the host at ${this.opts.url} closed the connection`))
        } else {
          this.emit('disconnect', refusal)
        }
        if (welcomed) this.scheduleReconnect()
      })
    })
  }

  private scheduleReconnect (): void {
    if (this.stopped) return
    const { minMs, maxMs } = this.opts.backoff ?? { minMs: 250, maxMs: 10_000 }
    const delay = Math.min(maxMs, minMs * 2 ** this.attempt++) * (0.75 + Math.random() * 0.5)
    this.timer = setTimeout(() => {
      this.connect().catch((err: HerdsError) => {
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
