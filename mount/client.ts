/**
 * The mount's connection to the host: one WebSocket, kept alive and remade when
 * it drops. While it is down, every call fails fast with EHOSTDOWN so no
 * program hangs on the mount.
 */
import { Dialer } from '../tree/dial.js'
import { HerdsError } from '../tree/errno.js'
import { treeFromCall } from '../tree/peer.js'
import type { Tree } from '../tree/tree.js'
import { PROTOCOL_VERSION } from '../tree/wire.js'

export interface HostConnection {
  tree: Tree
  dialer: Dialer
  close (): void
}

/** Connects to the host as a mount; rejects with the host's refusal or the network error. */
export async function connectHost (url: string): Promise<HostConnection> {
  const dialer = new Dialer({ url, hello: { t: 'hello', role: 'mount', protocol: PROTOCOL_VERSION } })
  await dialer.start()
  const tree = treeFromCall((op, args, ctx) => {
    const peer = dialer.peer
    if (!peer) return Promise.reject(new HerdsError('EHOSTDOWN', `not connected to the host at ${url}; reconnecting`))
    return peer.call(op, args, ctx)
  })
  return { tree, dialer, close: () => dialer.stop() }
}
