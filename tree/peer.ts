/**
 * A peer: one WebSocket carrying Tree calls both ways. It can serve a tree to
 * the other side and call the tree the other side serves. Requests carry ids
 * and are answered out of order; a call can be cancelled; a connection that
 * closes fails every pending call at once (EHOSTDOWN), so nothing hangs.
 */
import { EventEmitter } from 'node:events'
import { HerdsError, toHerdsError } from './errno.js'
import type { WireSocket } from './link.js'
import { Outbox } from './outbox.js'
import type { CallContext, Op, Tree } from './tree.js'
import { MAX_MESSAGE, OP_ARGS, OP_TIMEOUT_MS, OPS, decodeFrame, encodeFrame, parseArgs, parseResult, type Frame } from './wire.js'

interface Pending {
  op: Op
  resolve: (value: unknown) => void
  reject: (err: HerdsError) => void
  cleanup: () => void
}

/** An error as it travels; long messages (a long path in them) are cut to fit the frame's limit. */
function errorBody (error: HerdsError): { code: HerdsError['code'], message: string } {
  const message = error.message.length > MAX_MESSAGE ? error.message.slice(0, MAX_MESSAGE - 1) + '…' : error.message
  return { code: error.code, message }
}

/** The cap on requests one peer may have in flight at the other side. */
const MAX_IN_FLIGHT = 4096

/**
 * The cap on bytes waiting to go out to one peer (answers it asked for and has
 * not taken yet); past it reads are refused with EAGAIN, so a peer that stops
 * reading its socket cannot make us buffer without bound.
 */
export const MAX_BUFFERED_BYTES = 64 * 1024 * 1024

/**
 * The cap on bytes of requests being served for one peer (a write's data is
 * held until it is written): past it, that peer's socket is not read until
 * some are answered, so a fast sender waits in its own buffers, not ours.
 */
export const MAX_REQUEST_BYTES = 8 * 1024 * 1024

/** How long a peer told bye may take to close before it is cut off. */
const BYE_GRACE_MS = 1000

export class Peer extends EventEmitter {
  readonly socket: WireSocket
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private readonly inFlight = new Map<number, AbortController>()
  private readBytesInFlight = 0
  /** Bytes of the requests being served now (their frames' sizes). */
  private requestBytes = 0
  /** Set while requestBytes is past its cap: we are not reading this peer. */
  private requestHold: (() => void) | undefined
  /** Holds on reading: while any is taken, this peer's socket is paused. */
  private holds = 0
  private heardAt = Date.now()
  private readonly outbox: Outbox
  private served: Tree | undefined
  private helloFirst = false
  private closedError: HerdsError | undefined
  /** Set by bye(): frames that still arrive are ignored. */
  private stopServing = false

  constructor (socket: WireSocket) {
    super()
    this.socket = socket
    socket.binaryType = 'nodebuffer'
    this.outbox = new Outbox(socket, (frame) => this.write(frame))
    // Any frame is a sign of life; listenTo() counts every byte, for frames that take long to arrive.
    const heard = (): void => { this.heardAt = Date.now() }
    socket.on('ping', heard)
    socket.on('pong', heard)
    socket.on('message', (data, isBinary) => { heard(); this.onMessage(data, isBinary) })
    socket.on('close', (code, reason) => this.onClose(code, reason.toString()))
    socket.on('error', () => { /* 'close' follows and does the cleanup */ })
  }

  /** Insists that the first frame from the other side is a hello (the host's side). */
  requireHello (): void {
    this.helloFirst = true
  }

  /** Serves `tree` to the other side: its requests are answered from it. */
  serve (tree: Tree): void {
    this.served = tree
  }

  get closed (): boolean {
    return this.closedError !== undefined
  }

  /** Counts every chunk that arrives on `stream` (the connection under the WebSocket) as a sign of life. */
  listenTo (stream: NodeJS.EventEmitter): void {
    stream.on('data', () => { this.heardAt = Date.now() })
  }

  /**
   * When something last arrived from the other side (ms since the epoch). While
   * we hold the peer it is now: its silence is then ours, not a dead link.
   */
  get lastHeard (): number {
    return this.holds > 0 ? Date.now() : this.heardAt
  }

  /** Are we holding this peer (not reading its socket)? */
  get held (): boolean {
    return this.holds > 0
  }

  /**
   * Stops reading this peer until the returned function is called: a peer
   * that sends faster than we can act waits in its own buffers (and TCP's).
   * Holds are counted; the socket is read again when the last one ends.
   */
  hold (): () => void {
    if (this.holds++ === 0) this.socket.pause()
    let done = false
    return () => {
      if (done) return
      done = true
      if (--this.holds > 0) return
      // What it sent meanwhile waited for us: the silence was ours.
      this.heardAt = Date.now()
      this.socket.resume()
    }
  }

  /**
   * Sends a frame; a frame to a closed socket is dropped (its calls already
   * failed). A `changed` frame waits while the socket is backed up, gathered
   * with the next ones (folded into their folders past 1,000 paths).
   */
  send (frame: Frame): void {
    if (this.socket.readyState !== this.socket.OPEN) return
    if (frame.t === 'changed') return this.outbox.notice(frame)
    this.write(frame)
  }

  /** Puts a frame on the socket now. */
  private write (frame: Frame): void {
    if (this.socket.readyState !== this.socket.OPEN) return
    this.socket.send(encodeFrame(frame), { binary: true })
  }

  /**
   * Says why we close, then closes. From this moment nothing more is served
   * (a revoked token must not act while the close handshake runs), and a
   * peer that does not answer the close is cut off after a second.
   */
  bye (error: HerdsError, code = 4000): void {
    this.send({ t: 'bye', error: errorBody(error) })
    this.served = undefined
    this.helloFirst = false
    this.stopServing = true
    for (const controller of this.inFlight.values()) controller.abort()
    // The close reason is capped at 123 bytes; the bye frame carries the whole message.
    this.socket.close(code, error.code)
    setTimeout(() => this.socket.terminate(), BYE_GRACE_MS).unref()
  }

  /**
   * Calls `op` on the tree the other side serves. A release refused with
   * EAGAIN (the other side is at its cap of requests in flight) is tried again
   * until it is taken or the connection closes: a dropped release would leak
   * a file descriptor there.
   */
  async call (op: Op, args: unknown[], ctx?: CallContext): Promise<unknown> {
    for (let delay = 10; ; delay = Math.min(2 * delay, 1000)) {
      try {
        return await this.callOnce(op, args, ctx)
      } catch (err) {
        if (op !== 'release' || (err as HerdsError).code !== 'EAGAIN' || this.closed) throw err
      }
      await new Promise((resolve) => setTimeout(resolve, delay))
    }
  }

  private callOnce (op: Op, args: unknown[], ctx?: CallContext): Promise<unknown> {
    if (this.closedError) return Promise.reject(this.closedError)
    if (ctx?.signal?.aborted) return Promise.reject(new HerdsError('ECANCELED', 'cancelled'))
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const timeoutMs = OP_TIMEOUT_MS[op]
      const timer = timeoutMs > 0
        ? setTimeout(() => this.abandon(id, new HerdsError('ETIMEDOUT', `${op} got no answer in ${timeoutMs / 1000} s`)), timeoutMs)
        : undefined
      const onAbort = (): void => this.abandon(id, new HerdsError('ECANCELED', 'cancelled'))
      ctx?.signal?.addEventListener('abort', onAbort, { once: true })
      const cleanup = (): void => {
        if (timer) clearTimeout(timer)
        ctx?.signal?.removeEventListener('abort', onAbort)
      }
      try {
        this.outbox.request(id, { t: 'req', id, op, args }, op === 'write' ? (args[3] as Uint8Array | undefined)?.byteLength ?? 0 : 0)
      } catch (err) {
        cleanup()
        return reject(toHerdsError(err))
      }
      this.pending.set(id, { op, resolve, reject, cleanup })
    })
  }

  /** Gives up on a pending call and tells the other side to stop working on it (if it ever got it). */
  private abandon (id: number, error: HerdsError): void {
    const pending = this.pending.get(id)
    if (!pending) return
    this.pending.delete(id)
    pending.cleanup()
    if (!this.outbox.withdraw(id)) this.send({ t: 'cancel', id })
    pending.reject(error)
  }

  private onMessage (data: Buffer, isBinary: boolean): void {
    if (this.stopServing) return
    let frame: Frame
    try {
      if (!isBinary) throw new HerdsError('EPROTO', 'malformed frame: text frames are not spoken here')
      frame = decodeFrame(data)
    } catch (err) {
      // A peer that cannot frame its messages cannot be trusted with more: close it alone.
      this.bye(toHerdsError(err), 1002)
      return
    }
    if (this.helloFirst) {
      this.helloFirst = false
      if (frame.t !== 'hello') return this.bye(new HerdsError('EPROTO', 'the first frame must be a hello'), 1002)
    }
    switch (frame.t) {
      case 'req': return void this.onRequest(frame.id, frame.op, frame.args, data.length)
      case 'res': return this.onResponse(frame)
      case 'cancel': return this.inFlight.get(frame.id)?.abort()
      default: this.emit('frame', frame)
    }
  }

  private async onRequest (id: number, op: Op, rawArgs: unknown[], size: number): Promise<void> {
    if (!this.served) return this.send({ t: 'res', id, ok: false, error: { code: 'ENOSYS', message: 'this peer serves no tree' } })
    if (this.inFlight.has(id)) return this.send({ t: 'res', id, ok: false, error: { code: 'EINVAL', message: `request id ${id} is already in flight` } })
    if (this.inFlight.size >= MAX_IN_FLIGHT) return this.send({ t: 'res', id, ok: false, error: { code: 'EAGAIN', message: 'too many requests in flight' } })
    const readLength = op === 'read' && typeof rawArgs[3] === 'number' ? rawArgs[3] : 0
    if (readLength > 0 && this.readBytesInFlight + readLength + this.socket.bufferedAmount > MAX_BUFFERED_BYTES) {
      return this.send({ t: 'res', id, ok: false, error: { code: 'EAGAIN', message: 'too much data waiting for this connection to take it' } })
    }
    const controller = new AbortController()
    this.inFlight.set(id, controller)
    this.readBytesInFlight += readLength
    this.requestBytes += size
    if (this.requestBytes >= MAX_REQUEST_BYTES) this.requestHold ??= this.hold()
    try {
      const args = parseArgs(op, rawArgs)
      const value = await callOp(this.served, op, args, { signal: controller.signal })
      if (!controller.signal.aborted) this.send({ t: 'res', id, ok: true, value: value ?? null })
    } catch (err) {
      const error = toHerdsError(err)
      if (!controller.signal.aborted) this.send({ t: 'res', id, ok: false, error: errorBody(error) })
    } finally {
      this.inFlight.delete(id)
      this.readBytesInFlight -= readLength
      this.requestBytes -= size
      if (this.requestBytes < MAX_REQUEST_BYTES && this.requestHold) {
        this.requestHold()
        this.requestHold = undefined
      }
    }
  }

  private onResponse (frame: Extract<Frame, { t: 'res' }>): void {
    const pending = this.pending.get(frame.id)
    if (!pending) return // cancelled or timed out already
    this.pending.delete(frame.id)
    pending.cleanup()
    if (!frame.ok) return pending.reject(new HerdsError(frame.error.code, frame.error.message))
    try {
      pending.resolve(parseResult(pending.op, frame.value))
    } catch (err) {
      pending.reject(toHerdsError(err))
    }
  }

  private onClose (code: number, reason: string): void {
    this.closedError = new HerdsError('EHOSTDOWN', `connection closed${reason ? `: ${reason}` : ''}`)
    this.outbox.clear()
    for (const [id, pending] of this.pending) {
      this.pending.delete(id)
      pending.cleanup()
      pending.reject(this.closedError)
    }
    for (const controller of this.inFlight.values()) controller.abort()
    this.emit('close', code, reason)
  }
}

/**
 * Wraps a function that performs a call into a Tree. Used for a peer's remote
 * tree and for the mount's reconnecting client alike.
 */
export function treeFromCall (call: (op: Op, args: unknown[], ctx?: CallContext) => Promise<unknown>): Tree {
  const tree: Record<string, unknown> = {}
  for (const op of OPS) {
    const arity = OP_ARGS[op].def.items.length
    tree[op] = (...args: unknown[]) => call(op, args.slice(0, arity), args[arity] as CallContext | undefined)
  }
  return tree as unknown as Tree
}

/** Calls `op` on `tree` with arguments in wire order: how wrappers forward what they do not change. */
export function callOp (tree: Tree, op: Op, args: unknown[], ctx?: CallContext): Promise<unknown> {
  return (tree[op] as (...a: unknown[]) => Promise<unknown>).call(tree, ...args, ctx)
}

/** The tree the other side of `peer` serves. */
export function remoteTree (peer: Peer): Tree {
  return treeFromCall((op, args, ctx) => peer.call(op, args, ctx))
}
