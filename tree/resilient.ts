/**
 * A remote tree over a connection that comes and goes: the mount's link to the
 * host, the host's link to a node. While the link is down, new calls fail at
 * once (nothing hangs); a read of a file opened for reading before the drop waits for the
 * link to come back (up to a grace), opens the file again by its path and goes
 * on at the same offset, so `cat stdout` survives a restart of the host.
 */
import { EventEmitter } from 'node:events'
import { HerdsError } from './errno.js'
import { HandleTable } from './handles.js'
import { treeFromCall, type Peer } from './peer.js'
import { handleOf, O_RDWR, wantsWrite, type CallContext, type Created, type Op, type Tree } from './tree.js'

/** How long a read on an open file waits for a lost link to come back. */
export const RESUME_GRACE_MS = 60_000

interface Handle {
  path: string
  flags: number
  /** The handle number on the other side, valid on `peer` only. */
  fh: number
  peer: Peer
}

export class ResilientRemote {
  private peer: Peer | undefined
  private readonly handles = new HandleTable<Handle>()
  private readonly events = new EventEmitter()
  private readonly downError: () => HerdsError
  private readonly graceMs: number
  /** The remote tree; the same object across reconnections. */
  readonly tree: Tree

  /** `downError` says why calls fail while the link is down. */
  /** Set by close(): no new link is waited for. */
  private closed = false

  constructor (downError: () => HerdsError, graceMs = RESUME_GRACE_MS) {
    this.downError = downError
    this.graceMs = graceMs
    this.events.setMaxListeners(0)
    this.tree = treeFromCall((op, args, ctx) => this.call(op, args, ctx))
  }

  get connected (): boolean {
    return this.peer !== undefined && !this.peer.closed
  }

  /** Gives up for good (the client closed): reads waiting for a new link fail at once. */
  close (): void {
    this.closed = true
    this.events.emit('closed')
  }

  /** Uses a new connection from now on. */
  attach (peer: Peer): void {
    this.peer = peer
    peer.on('close', () => { if (this.peer === peer) this.peer = undefined })
    this.events.emit('peer')
  }

  private live (): Peer {
    if (!this.peer || this.peer.closed) throw this.downError()
    return this.peer
  }

  private async call (op: Op, args: unknown[], ctx?: CallContext): Promise<unknown> {
    switch (op) {
      case 'open':
      case 'create': {
        const peer = this.live()
        const result = await peer.call(op, args, ctx) as number | Created
        const fh = handleOf(result)
        const handle = { path: args[0] as string, flags: op === 'open' ? args[1] as number : O_RDWR, fh, peer }
        const mine = this.handles.add(handle)
        return typeof result === 'number' ? mine : { ...result, fh: mine }
      }
      case 'read': return this.read(args, ctx)
      case 'write':
      case 'flush':
      case 'fsync': {
        const handle = this.handle(args[1] as number)
        // What was written through a lost link may be lost with it: say so rather than go on.
        if (handle.peer.closed) throw new HerdsError('EIO', `the connection was lost while ${handle.path} was open for writing; open it again`)
        return handle.peer.call(op, [args[0], handle.fh, ...args.slice(2)], ctx)
      }
      case 'getlk':
      case 'setlk':
      case 'flock': {
        const handle = this.handle(args[1] as number)
        if (handle.peer.closed) {
          // The other side let go of every lock taken through the lost link: unlocking asks nothing more.
          if (args[op === 'flock' ? 2 : 3] === 'unlock') return null
          throw new HerdsError('EIO', `the connection was lost while ${handle.path} was open, and its locks with it; open it again`)
        }
        return handle.peer.call(op, [args[0], handle.fh, ...args.slice(2)], ctx)
      }
      case 'release': {
        const own = args[1] as number
        const handle = this.handles.take(own)
        // Over a lost link the other side has released it already.
        if (handle && !handle.peer.closed) await handle.peer.call('release', [args[0], handle.fh], ctx).catch(() => {})
        return null
      }
      default: return this.live().call(op, args, ctx)
    }
  }

  private handle (own: number): Handle {
    return this.handles.must(own)
  }

  private async read (args: unknown[], ctx?: CallContext): Promise<unknown> {
    const [, own, offset, length] = args as [string, number, number, number]
    for (;;) {
      const handle = this.handle(own)
      // A file open for writing too (a port's data) is not taken up again: what was on its way through the lost link is lost.
      if (handle.peer.closed && wantsWrite(handle.flags)) throw new HerdsError('EIO', `the connection was lost while ${handle.path} was open for writing; open it again`)
      if (handle.peer.closed) await this.reopen(handle, ctx)
      try {
        return await handle.peer.call('read', [handle.path, handle.fh, offset, length], ctx)
      } catch (err) {
        if (this.closed) throw new HerdsError('ECANCELED', 'the connection was closed')
        // The link dropped under a waiting read: wait for it and read again.
        if (handle.peer.closed && !ctx?.signal?.aborted) continue
        throw err
      }
    }
  }

  /**
   * Opens a file again over the new link. Right after a host restart the file
   * may not be there yet (its node has not dialled in again): try again until
   * the grace is over.
   */
  private async reopen (handle: Handle, ctx?: CallContext): Promise<void> {
    const deadline = Date.now() + this.graceMs
    for (;;) {
      const peer = await this.waitForPeer(ctx?.signal)
      try {
        handle.fh = await peer.call('open', [handle.path, handle.flags], ctx) as number
        handle.peer = peer
        return
      } catch (err) {
        const code = (err as HerdsError).code
        if (ctx?.signal?.aborted || Date.now() > deadline || !['ENOENT', 'EHOSTDOWN', 'ETIMEDOUT'].includes(code)) throw err
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
    }
  }

  private waitForPeer (signal?: AbortSignal): Promise<Peer> {
    if (this.peer && !this.peer.closed) return Promise.resolve(this.peer)
    if (this.closed) return Promise.reject(new HerdsError('ECANCELED', 'the connection was closed'))
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer)
        this.events.off('peer', onPeer)
        this.events.off('closed', onAbort)
        signal?.removeEventListener('abort', onAbort)
      }
      const onPeer = (): void => { done(); resolve(this.peer!) }
      const onAbort = (): void => { done(); reject(new HerdsError('ECANCELED', this.closed ? 'the connection was closed' : 'cancelled')) }
      this.events.on('closed', onAbort)
      const timer = setTimeout(() => { done(); reject(this.downError()) }, this.graceMs)
      this.events.on('peer', onPeer)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}
