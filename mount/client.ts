/**
 * The mount's connection to the host: one WebSocket, kept alive and remade when
 * it drops. While it is down, new calls fail fast with EHOSTDOWN so no program
 * hangs on the mount; reads of files already open resume when it is back.
 */
import { Dialer } from '../tree/dial.js'
import { HerdsError } from '../tree/errno.js'
import { ResilientRemote } from '../tree/resilient.js'
import type { Tree } from '../tree/tree.js'
import { PROTOCOL_VERSION } from '../tree/wire.js'

export interface HostConnection {
  tree: Tree
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
}

/** Connects to the host as a mount; rejects with the host's refusal or the network error. */
export async function connectHost (url: string, opts: ConnectOptions = {}): Promise<HostConnection> {
  const link = new ResilientRemote(() => new HerdsError('EHOSTDOWN', `not connected to the host at ${url}; reconnecting`))
  const dialer = new Dialer({
    url,
    token: opts.token,
    ca: opts.ca,
    pinned: opts.pinned,
    hello: { t: 'hello', role: 'mount', protocol: PROTOCOL_VERSION },
    onConnect: (peer) => link.attach(peer),
  })
  await dialer.start()
  return { tree: link.tree, dialer, close: () => { link.close(); dialer.stop() } }
}
