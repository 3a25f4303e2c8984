/**
 * The host: a WebSocket server that nodes dial into and mounts connect to. It
 * checks each connection's token at the upgrade, composes the namespace from
 * the nodes' trees and serves it to every mount through its token's scope.
 */
import { chmod, mkdir } from 'node:fs/promises'
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { isIP, type AddressInfo, type Socket } from 'node:net'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { WebSocketServer } from 'ws'
import { moveChanges, type Changed } from '../tree/changed.js'
import { HerdsError, toHerdsError } from '../tree/errno.js'
import { HEARTBEAT_MS } from '../tree/dial.js'
import { MAX_OPEN_PER_CONNECTION, trackHandles } from '../tree/handles.js'
import { LinkEnd, type WireSocket } from '../tree/link.js'
import { Peer } from '../tree/peer.js'
import type { Tree } from '../tree/tree.js'
import { VERSION } from '../tree/version.js'
import { PROTOCOL_VERSION, type Frame } from '../tree/wire.js'
import { ensureAdminToken } from './admin.js'
import { audited } from './audit.js'
import { limitBusy, limitRate, MAX_NOTICES_PER_SECOND, MAX_REPORTS_IN_FLIGHT } from './flow.js'
import { Journal } from './journal.js'
import { namespaceTree } from './namespace.js'
import { Registry } from './registry.js'
import { scoped } from './scope.js'
import { openHostStore } from './store.js'
import { atTime, bearer, endOf, type TokenRecord, type TokenStore } from './tokens.js'
import { limitUpgrades } from './upgrades.js'
import { portProxy } from './proxy.js'

export interface HostOptions {
  /** Port to listen on; 0 picks a free one. */
  port: number
  /** Address to listen on (default 127.0.0.1); any other needs `tls` or `insecure`. */
  address?: string
  /** Serve wss:// with this certificate and key (PEM). */
  tls?: { cert: Buffer, key: Buffer }
  /** Allow plain ws:// on an address other than loopback (tokens then cross the network in clear). */
  insecure?: boolean
  /** Where the host keeps its state (HERDS_HOME/host). */
  home: string
  /** The node /.herds/venoms/run runs on; else the first to connect. */
  defaultNode?: string
  log?: (line: string) => void
}

export interface RunningHost {
  url: string
  port: number
  registry: Registry
  namespace: Tree
  tokens: TokenStore
  /** The admin token's secret (also in HERDS_HOME/host/admin.token). */
  adminToken: string
  /**
   * A connection to this host inside its own process, for `herds up`'s node and mount: the
   * token is checked as at an upgrade, and what follows (hello, scope, expiry) is as for a
   * WebSocket. Throws EACCES for a token that is not known, revoked or expired.
   */
  link (secret: string): WireSocket
  /** Connected mounts, for health. */
  mounts (): number
  stop (): Promise<void>
}

/** A peer that has not said hello by then is dropped. */
const HELLO_TIMEOUT_MS = 10_000
/**
 * The largest message from a read or run token: a write of 16 MiB and its
 * path. Node and admin tokens may send up to 64 MiB (a node's report of its
 * recent jobs).
 */
export const MAX_MOUNT_MESSAGE = 16 * 1024 * 1024 + 64 * 1024
const MAX_NODE_MESSAGE = 64 * 1024 * 1024

export async function startHost (opts: HostOptions): Promise<RunningHost> {
  const log = opts.log ?? (() => {})
  const address = opts.address ?? '127.0.0.1'
  if (!isLoopback(address) && !opts.tls && !opts.insecure) {
    throw new HerdsError('EINVAL', `listening on ${address} would send tokens in clear: give --tls-cert and --tls-key, or --insecure on a network you trust`)
  }
  await mkdir(opts.home, { recursive: true, mode: 0o700 })
  await chmod(opts.home, 0o700) // mkdir's mode applies only to a new folder; this one holds the admin token
  const store = openHostStore(join(opts.home, 'db'))
  const journal = new Journal(join(opts.home, 'audit.jsonl'))
  const adminToken = await ensureAdminToken(join(opts.home, 'admin.token'), store.tokens)
  const registry = new Registry()
  const startedAt = Date.now()
  const mounts = new Set<Peer>()
  /** Every live connection and the token it came with, so a revocation closes them. */
  const sessions = new Map<Peer, TokenRecord>()
  const revoked = (name: string): void => {
    for (const [peer, token] of sessions) {
      if (token.name === name) peer.bye(new HerdsError('EACCES', `the token "${name}" was revoked`), 4001)
    }
    ports.revoked(name)
  }
  // Where browsers reach this host: known once it listens.
  let baseUrl = ''
  const namespace = namespaceTree({
    registry,
    jobs: store.jobs,
    tokens: store.tokens,
    exposures: store.ports,
    baseUrl: () => baseUrl,
    journal,
    revoked,
    defaultNode: opts.defaultNode,
    health: () => ({
      version: VERSION,
      protocol: PROTOCOL_VERSION,
      startedAt: new Date(startedAt).toISOString(),
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      nodes: { known: registry.names().length, online: registry.all().filter((e) => e.link.connected).length },
      mounts: mounts.size,
      defaultNode: opts.defaultNode ?? registry.first()?.name ?? null,
    }),
  })
  const http: Server = (opts.tls ? createHttpsServer(opts.tls) : createHttpServer()).on('request', (req, res) => {
    try {
      if (ports.request(req, res)) return
      res.writeHead(426, { 'content-type': 'text/plain', connection: 'close' }).end('Herds host: connect with a WebSocket (herds node, herds mount)\n')
    } catch (err) {
      // One request's fault is that request's: the host, its nodes and mounts go on.
      log(`a request for ${req.url ?? '?'} failed: ${toHerdsError(err).message}`)
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain', connection: 'close' })
      res.end()
    }
  })
  // A connection that has shown no token yet is on a short leash (a slowloris must not fill the host).
  const upgrades = limitUpgrades(http)
  // Exposed ports: HTTP to servers on nodes, through the namespace.
  const ports = portProxy({ exposures: store.ports, namespace, tokens: store.tokens, journal, accepted: (socket) => upgrades.accepted(socket) })
  // Mounts' tokens (read, run) may send smaller messages than nodes' (node, admin).
  const wssFor = (maxPayload: number): WebSocketServer => new WebSocketServer({ noServer: true, clientTracking: false, perMessageDeflate: false, maxPayload })
  const mountWss = wssFor(MAX_MOUNT_MESSAGE)
  const nodeWss = wssFor(MAX_NODE_MESSAGE)

  // The token is checked before the upgrade: a wrong one gets HTTP 401 and never a WebSocket.
  http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => {})
    try {
      if (ports.upgrade(req, socket, head)) return
    } catch (err) {
      log(`an upgrade for ${req.url ?? '?'} failed: ${toHerdsError(err).message}`)
      socket.destroy()
      return
    }
    const token = store.tokens.verify(bearer(req.headers.authorization) ?? '')
    if (!token) {
      const why = req.headers.authorization ? 'the token is not known, revoked or expired' : 'no token (Authorization: Bearer <token>)'
      journal.refused('(connect)', new HerdsError('EACCES', `${why}; from ${req.socket.remoteAddress}`))
      // It stays on the leash until it closes: a client that never does is cut off by the upgrade timeout.
      socket.end(`HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${why}\n`)
      return
    }
    const wss = token.scope === 'read' || token.scope === 'run' ? mountWss : nodeWss
    wss.handleUpgrade(req, socket, head, (ws) => {
      upgrades.accepted(socket)
      connected(ws, token, socket)
    })
  })

  function connected (socket: WireSocket, token: TokenRecord, raw?: Socket): void {
    const peer = new Peer(socket)
    // Every byte that arrives is a sign of life, so a pong stuck behind a big write does not count as silence.
    if (raw) peer.listenTo(raw)
    peer.requireHello()
    sessions.set(peer, token)
    socket.on('pong', () => registry.seen(peer))
    const helloTimer = setTimeout(() => peer.bye(new HerdsError('ETIMEDOUT', 'no hello in time')), HELLO_TIMEOUT_MS)
    // Closed when its token expires.
    const cancelExpiry = atTime(endOf(token), () => peer.bye(new HerdsError('EACCES', `the token "${token.name}" has expired`), 4001))
    peer.on('close', () => { clearTimeout(helloTimer); cancelExpiry(); sessions.delete(peer) })
    peer.once('frame', (frame: Frame) => {
      clearTimeout(helloTimer)
      try {
        welcome(peer, frame, token)
      } catch (err) {
        const error = toHerdsError(err)
        log(`refused a peer: ${error.message}`)
        journal.refused('(hello)', error, token.name)
        peer.bye(error, 4000)
      }
    })
  }

  /** Tells every mount what changed on a node, so none serves what it cached before. */
  function changed (changes: Changed): void {
    // A mount that is behind gets them gathered (see Peer.send), never a queue of frames.
    for (const mount of mounts) mount.send({ t: 'changed', ...changes })
  }

  function welcome (peer: Peer, frame: Frame, token: TokenRecord): void {
    if (frame.t !== 'hello') throw new HerdsError('EPROTO', 'the first frame must be a hello')
    if (frame.protocol !== PROTOCOL_VERSION) throw new HerdsError('EPROTO', `protocol ${frame.protocol} is not spoken here (host speaks ${PROTOCOL_VERSION})`)
    if (frame.role === 'node') {
      const name = frame.name
      if (token.scope === 'node' ? token.node !== name : token.scope !== 'admin') {
        throw new HerdsError('EACCES', token.scope === 'node'
          ? `the token "${token.name}" is for node "${token.node}"; it cannot register as "${name}"`
          : `the token "${token.name}" has scope ${token.scope}; a node needs a node token (or admin)`)
      }
      registry.connect(name, frame.info, peer)
      log(`node ${name} connected (${frame.info.hostname}, ${frame.info.os}/${frame.info.arch})`)
      // A node that reports faster than the host acts is read more slowly, not queued for.
      const reports = limitBusy(peer, MAX_REPORTS_IN_FLIGHT)
      const notices = limitRate(peer, MAX_NOTICES_PER_SECOND)
      peer.on('frame', (event: Frame) => {
        if (event.t === 'jobs') reports(store.jobs.update(name, event.jobs).catch((err) => log(`job index: ${toHerdsError(err).message}`)))
        if (event.t === 'changed') {
          notices()
          changed(moveChanges(event, (p) => `/nodes/${name}${p === '/' ? '' : p}`))
        }
      })
      // What changed there while it was away is not known: every mount drops what it kept of it.
      changed({ paths: [`/nodes/${name}`] })
      peer.on('close', () => log(`node ${frame.name} disconnected`))
    } else {
      if (token.scope === 'node') throw new HerdsError('EACCES', `the token "${token.name}" is a node token; a mount needs a read, run or admin token`)
      const session = trackHandles(namespace, MAX_OPEN_PER_CONNECTION, { ownLocks: true })
      peer.serve(scoped(audited(session.tree, token.name, journal), {
        scope: token.scope,
        token: token.name,
        onRefuse: (path, err) => journal.refused(path, err, token.name),
      }))
      mounts.add(peer)
      peer.on('close', () => { mounts.delete(peer); void session.releaseAll() })
    }
    peer.send({ t: 'welcome', protocol: PROTOCOL_VERSION, host: 'herds' })
  }

  // Heartbeats: a peer from which nothing at all arrived since the last ping is
  // cut off, so nodes go offline promptly and calls to them fail fast instead
  // of hanging. Any byte counts, not only the pong, which may be queued behind
  // the peer's data; a peer the host is holding (not reading) is not judged.
  let pingedAt = Date.now()
  // Judged after the loop has read what already arrived (setImmediate runs after I/O), so a busy host does not mistake its own backlog for silence.
  const heartbeat = setInterval(() => setImmediate(() => {
    for (const peer of sessions.keys()) {
      if (peer.lastHeard < pingedAt) { peer.socket.terminate(); continue }
      peer.socket.ping()
    }
    pingedAt = Date.now()
  }), HEARTBEAT_MS)
  heartbeat.unref()

  await new Promise<void>((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException): void => {
      clearInterval(heartbeat)
      void store.close()
      reject(err.code === 'EADDRINUSE'
        ? new HerdsError('EBUSY', `port ${opts.port} on ${address} is in use: is another host running? (--port picks another)`)
        : err.code === 'EADDRNOTAVAIL'
          ? new HerdsError('EINVAL', `--listen ${address}: this machine has no such address`)
          : err)
    }
    http.once('error', fail)
    http.listen(opts.port, address, () => resolve())
  })
  const { port, address: bound } = http.address() as AddressInfo
  const hostPart = bound.includes(':') ? `[${bound}]` : bound
  // A wildcard address is no place to browse to: this machine's name is.
  const reachable = bound === '0.0.0.0' || bound === '::' ? hostname() : hostPart
  baseUrl = `${opts.tls ? 'https' : 'http'}://${reachable}:${port}`
  return {
    url: `${opts.tls ? 'wss' : 'ws'}://${hostPart}:${port}`,
    port,
    registry,
    namespace,
    tokens: store.tokens,
    adminToken,
    link: (secret) => {
      const token = store.tokens.verify(secret)
      if (!token) throw new HerdsError('EACCES', 'the host refused the token: it is not known, revoked or expired')
      const [ours, theirs] = LinkEnd.pair()
      connected(ours, token)
      return theirs
    },
    mounts: () => mounts.size,
    stop: async () => {
      clearInterval(heartbeat)
      for (const peer of sessions.keys()) peer.socket.terminate()
      for (const wss of [mountWss, nodeWss]) await new Promise<void>((resolve) => wss.close(() => resolve()))
      http.closeAllConnections()
      await new Promise<void>((resolve) => http.close(() => resolve()))
      await store.close()
    },
  }
}

function isLoopback (address: string): boolean {
  return address === 'localhost' || address === '::1' || (isIP(address) === 4 && address.startsWith('127.'))
}
