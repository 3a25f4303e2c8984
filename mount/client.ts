/**
 * The mount's connection to the host: one WebSocket, kept alive and remade when
 * it drops. While it is down, new calls fail fast with EHOSTDOWN so no program
 * hangs on the mount; reads of files already open resume when it is back.
 */
import { Dialer } from '../tree/dial.js'
import type { WireSocket } from '../tree/link.js'
import { HerdsError } from '../tree/errno.js'
import { ResilientRemote } from '../tree/resilient.js'
import type { Tree } from '../tree/tree.js'
import { PROTOCOL_VERSION, type Frame } from '../tree/wire.js'
import { CachedTree } from './cache.js'

export interface HostConnection {
  tree: Tree
  /** The cache under `tree`, for fsync. */
  cache: CachedTree
  /** The same namespace without the cache: every call a round trip. */
  remote: Tree
  dialer: Dialer
  close (): void
}

export interface ConnectOptions {
  /** A read, run or admin token. */
  token?: string
  /** Extra TLS trust for a wss:// host with a self-signed certificate (PEM). */
  ca?: Buffer
  /** See DialOptions.pinned. */
  pinned?: boolean
  /** See DialOptions.open. */
  open?: () => WireSocket
}

/** Connects to the host as a mount; rejects with the host's refusal or the network error. */
export async function connectHost (url: string, opts: ConnectOptions = {}): Promise<HostConnection> {
  const link = new ResilientRemote(() => new HerdsError('EHOSTDOWN', `not connected to the host at ${url}; reconnecting`))
  const cache = new CachedTree(link.tree)
  const dialer = new Dialer({
    url,
    token: opts.token,
    ca: opts.ca,
    pinned: opts.pinned,
    open: opts.open,
    hello: { t: 'hello', role: 'mount', protocol: PROTOCOL_VERSION },
    onConnect: (peer) => {
      // Changes made while we were away were not heard of: start afresh.
      cache.clear()
      peer.on('frame', (frame: Frame) => { if (frame.t === 'changed') cache.invalidate(frame) })
      link.attach(peer)
    },
  })
  await dialer.start()
  return { tree: cache.tree, cache, remote: link.tree, dialer, close: () => { link.close(); dialer.stop() } }
}
