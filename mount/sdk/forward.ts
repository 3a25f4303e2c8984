/**
 * Forwarding as ssh -L does it: a listener on this machine, each connection
 * to it carried to a port on a node as a connection of its own (a tunnel, see
 * tree/tunnel.ts), with its own flow control.
 */
import { createServer, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { HerdsError, toHerdsError } from '../../tree/errno.js'

/** Local connections carried at once, at most; the node holds as many per ports/ folder. */
export const MAX_FORWARDED = 1024

export interface ForwardOptions {
  /** The local port to listen on (0, the default: a free one). */
  localPort?: number
  /** The local address (127.0.0.1: only this machine). */
  address?: string
  /** Told of each connection that could not be carried (nothing listens on the node's port, say). */
  onError?: (err: HerdsError) => void
}

export interface Forwarding {
  /** The local port connections are taken on. */
  port: number
  address: string
  /** Connections being carried now. */
  connections (): number
  /** Stops listening and closes every connection carried. */
  close (): Promise<void>
}

/** Listens on a local port; each connection gets a tunnel from `connect` and the bytes are carried both ways. */
export async function forwardPort (connect: () => Promise<Duplex>, opts: ForwardOptions = {}): Promise<Forwarding> {
  const open = new Set<Socket>()
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
    open.add(socket)
    socket.once('close', () => open.delete(socket))
    socket.on('error', () => socket.destroy())
    connect().then((tunnel) => carry(socket, tunnel), (err: unknown) => {
      socket.destroy()
      opts.onError?.(toHerdsError(err))
    })
  })
  server.maxConnections = MAX_FORWARDED
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE'
      ? new HerdsError('EBUSY', `port ${opts.localPort} on ${opts.address ?? '127.0.0.1'} is in use here: pick another local port`)
      : toHerdsError(err)))
    server.listen(opts.localPort ?? 0, opts.address ?? '127.0.0.1', () => resolve())
  })
  const { port, address } = server.address() as { port: number, address: string }
  return {
    port,
    address,
    connections: () => open.size,
    close: async () => {
      for (const socket of open) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** Carries bytes between a local socket and a tunnel until both ends are done or one fails. */
function carry (socket: Socket, tunnel: Duplex): void {
  if (socket.destroyed) return void tunnel.destroy()
  const fail = (): void => { socket.destroy(); tunnel.destroy() }
  tunnel.on('error', fail)
  socket.on('error', fail)
  socket.once('close', () => tunnel.destroy())
  tunnel.once('close', () => { if (!socket.writableEnded) socket.end() })
  // pipe ends the other side's writing when this side's reading ends: a half-close carried across.
  socket.pipe(tunnel)
  tunnel.pipe(socket)
  socket.resume()
}
