/**
 * The node registry: every node the host knows, online or not, each with one
 * link that outlives its connections, so reads open across a reconnection of
 * the node go on.
 */
import { HerdsError } from '../tree/errno.js'
import type { Peer } from '../tree/peer.js'
import { ResilientRemote } from '../tree/resilient.js'
import type { Tree } from '../tree/tree.js'
import type { NodeInfo } from '../tree/wire.js'

export interface NodeEntry {
  name: string
  info: NodeInfo
  /** The node's tree, over whichever connection it has now. */
  link: ResilientRemote
  /** The live connection; absent while the node is offline. */
  peer: Peer | undefined
  connectedAt: string | null
  lastSeen: string
}

/** What a call to a node that is offline fails with. */
export function offline (entry: NodeEntry): HerdsError {
  return new HerdsError('EHOSTDOWN', `node "${entry.name}" is offline (last seen ${entry.lastSeen})`)
}

export class Registry {
  private readonly nodes = new Map<string, NodeEntry>()

  names (): string[] {
    return [...this.nodes.keys()].sort()
  }

  get (name: string): NodeEntry | undefined {
    return this.nodes.get(name)
  }

  /** The node that registered first and is still known. */
  first (): NodeEntry | undefined {
    return this.nodes.values().next().value
  }

  all (): NodeEntry[] {
    return this.names().map((name) => this.nodes.get(name)!)
  }

  /** Registers a node's connection; a second live connection under one name is refused. */
  connect (name: string, info: NodeInfo, peer: Peer): NodeEntry {
    const known = this.nodes.get(name)
    if (known?.peer && !known.peer.closed) {
      throw new HerdsError('EEXIST', `a node named "${name}" is already connected (from ${known.info.hostname}); start this one with another name (--name)`)
    }
    const now = new Date().toISOString()
    const entry: NodeEntry = known ?? {
      name,
      info,
      link: new ResilientRemote(() => offline(entry)),
      peer: undefined,
      connectedAt: null,
      lastSeen: now,
    }
    Object.assign(entry, { info, peer, connectedAt: now, lastSeen: now })
    entry.link.attach(peer)
    this.nodes.set(name, entry)
    peer.on('close', () => {
      if (entry.peer !== peer) return
      entry.peer = undefined
      entry.lastSeen = new Date().toISOString()
    })
    return entry
  }

  /** The tree of a node that is online; ENOENT for an unknown name, EHOSTDOWN while it is offline. */
  treeOf (name: string): Tree {
    const entry = this.nodes.get(name)
    if (!entry) throw new HerdsError('ENOENT', noSuchNode(this, name))
    if (!entry.link.connected) throw offline(entry)
    return entry.link.tree
  }

  /** Forgets a node that is offline; EBUSY while it is connected. */
  forget (name: string): void {
    const entry = this.nodes.get(name)
    if (!entry) throw new HerdsError('ENOENT', noSuchNode(this, name))
    if (entry.link.connected) throw new HerdsError('EBUSY', `node "${name}" is connected: stop it first, then forget it`)
    this.nodes.delete(name)
  }

  /** Notes that a node answered a heartbeat. */
  seen (peer: Peer): void {
    for (const entry of this.nodes.values()) {
      if (entry.peer === peer) entry.lastSeen = new Date().toISOString()
    }
  }
}

/** "no node named x (online: a, b)": what a user needs to pick the right one. */
export function noSuchNode (registry: Registry, name: string): string {
  const online = registry.all().filter((entry) => entry.link.connected).map((entry) => entry.name)
  return `no node named ${name} (online: ${online.length ? online.join(', ') : 'none'})`
}
