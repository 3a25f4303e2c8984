/**
 * The host: a WebSocket server that nodes dial into and mounts connect to. It
 * composes the namespace from the nodes' trees and serves it to every mount.
 */
import { mkdir } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'
import { HerdsError, toHerdsError } from '../tree/errno.js'
import { HEARTBEAT_MS } from '../tree/dial.js'
import { trackHandles } from '../tree/handles.js'
import { Peer } from '../tree/peer.js'
import type { Tree } from '../tree/tree.js'
import { PROTOCOL_VERSION, type Frame } from '../tree/wire.js'
import { namespaceTree } from './namespace.js'
import { Registry } from './registry.js'
import { openJobIndex } from './store.js'

export interface HostOptions {
  /** Port to listen on; 0 picks a free one. */
  port: number
  /** Address to listen on; 127.0.0.1 until tokens exist. */
  address?: string
  /** Where the host keeps its state (HERDS_HOME/host). */
  home: string
  log?: (line: string) => void
}

export interface RunningHost {
  url: string
  port: number
  registry: Registry
  namespace: Tree
  /** Connected mounts, for health. */
  mounts (): number
  stop (): Promise<void>
}

/** A peer that has not said hello by then is dropped. */
const HELLO_TIMEOUT_MS = 10_000

export async function startHost (opts: HostOptions): Promise<RunningHost> {
  const log = opts.log ?? (() => {})
  await mkdir(opts.home, { recursive: true })
  const index = openJobIndex(join(opts.home, 'db'))
  const registry = new Registry()
  const namespace = namespaceTree(registry, index)
  const mounts = new Set<Peer>()
  const http: Server = createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' }).end('Herds host: connect with a WebSocket (herds node, herds mount)\n')
  })
  const wss = new WebSocketServer({ server: http, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 })
  const alive = new WeakMap<WebSocket, boolean>()

  wss.on('connection', (socket) => {
    const peer = new Peer(socket)
    peer.requireHello()
    alive.set(socket, true)
    socket.on('pong', () => { alive.set(socket, true); registry.seen(peer) })
    const helloTimer = setTimeout(() => peer.bye(new HerdsError('ETIMEDOUT', 'no hello in time')), HELLO_TIMEOUT_MS)
    peer.on('close', () => clearTimeout(helloTimer))
    peer.once('frame', (frame: Frame) => {
      clearTimeout(helloTimer)
      try {
        welcome(peer, frame)
      } catch (err) {
        const error = toHerdsError(err)
        log(`refused a peer: ${error.message}`)
        peer.bye(error, 4000)
      }
    })
  })

  function welcome (peer: Peer, frame: Frame): void {
    if (frame.t !== 'hello') throw new HerdsError('EPROTO', 'the first frame must be a hello')
    if (frame.protocol !== PROTOCOL_VERSION) throw new HerdsError('EPROTO', `protocol ${frame.protocol} is not spoken here (host speaks ${PROTOCOL_VERSION})`)
    if (frame.role === 'node') {
      const name = frame.name
      registry.connect(name, frame.info, peer)
      log(`node ${name} connected (${frame.info.hostname}, ${frame.info.os}/${frame.info.arch})`)
      peer.on('frame', (event: Frame) => {
        if (event.t === 'jobs') index.update(name, event.jobs).catch((err) => log(`job index: ${toHerdsError(err).message}`))
      })
      peer.on('close', () => log(`node ${frame.name} disconnected`))
    } else {
      const session = trackHandles(namespace)
      peer.serve(session.tree)
      mounts.add(peer)
      peer.on('close', () => { mounts.delete(peer); void session.releaseAll() })
    }
    peer.send({ t: 'welcome', protocol: PROTOCOL_VERSION, host: 'herds' })
  }

  // Heartbeats: a peer that missed a ping round is cut off, so nodes go offline
  // promptly and calls to them fail fast instead of hanging.
  const heartbeat = setInterval(() => {
    for (const socket of wss.clients) {
      if (!alive.get(socket)) { socket.terminate(); continue }
      alive.set(socket, false)
      socket.ping()
    }
  }, HEARTBEAT_MS)
  heartbeat.unref()

  await new Promise<void>((resolve, reject) => {
    const address = opts.address ?? '127.0.0.1'
    const fail = (err: NodeJS.ErrnoException): void => {
      clearInterval(heartbeat)
      void index.close()
      reject(err.code === 'EADDRINUSE'
        ? new HerdsError('EBUSY', `port ${opts.port} on ${address} is in use: is another host running? (--port picks another)`)
        : err)
    }
    // ws re-emits the server's errors; without a listener they would crash the process.
    wss.on('error', fail)
    http.once('error', fail)
    http.listen(opts.port, address, () => resolve())
  })
  const { port, address } = http.address() as AddressInfo
  const host = address.includes(':') ? `[${address}]` : address
  return {
    url: `ws://${host}:${port}`,
    port,
    registry,
    namespace,
    mounts: () => mounts.size,
    stop: async () => {
      clearInterval(heartbeat)
      for (const socket of wss.clients) socket.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      await new Promise<void>((resolve) => http.close(() => resolve()))
      await index.close()
    },
  }
}
