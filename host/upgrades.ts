/**
 * Connections that are not a WebSocket yet, and so have shown no token: each
 * has UPGRADE_TIMEOUT_MS to send its upgrade request and be accepted, one
 * address holds at most MAX_PENDING_PER_ADDRESS of them and all addresses
 * together MAX_PENDING. Past a cap the oldest one is closed, not the newcomer:
 * a client that speaks at once (every Herds client) gets in while a slowloris
 * holds its sockets open, and the host's descriptors past the cap stay for the
 * peers that have shown a token.
 */
import { isIPv6 } from 'node:net'
import type { Server } from 'node:http'
import type { Socket } from 'node:net'

/** How long a connection may take to send its upgrade request and be accepted. */
export const UPGRADE_TIMEOUT_MS = 5_000
/** Connections not yet upgraded from one address (an IPv6 /64 counts as one). */
export const MAX_PENDING_PER_ADDRESS = 32
/** Connections not yet upgraded, from all addresses. */
export const MAX_PENDING = 512

export interface UpgradeLimits {
  timeoutMs: number
  perAddress: number
  total: number
}

export interface PendingUpgrades {
  /** The connection became a WebSocket with a valid token: its limits no longer apply. */
  accepted (socket: Socket): void
  /** How many connections are waiting now. */
  size (): number
}

interface Entry { socket: Socket, source: string, timer: NodeJS.Timeout }

/** Where a connection comes from, for the per-address cap: the address, or an IPv6 address's /64. */
export function sourceOf (address: string | undefined): string {
  if (!address) return '?'
  if (address.startsWith('::ffff:')) return address.slice(7)
  if (!isIPv6(address)) return address
  const [head, tail = ''] = address.split('::')
  const left = head ? head.split(':') : []
  const right = tail ? tail.split(':') : []
  const full = address.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left
  return full.slice(0, 4).map((part) => part.toLowerCase().replace(/^0+(?=.)/, '')).join(':') + '::/64'
}

/** The key of one TCP connection; a TLS socket has the same as the raw socket under it. */
function keyOf (socket: Socket): string {
  return `${socket.remoteAddress ?? '?'}|${socket.remotePort ?? '?'}`
}

/** Applies the limits to every connection `server` accepts. */
export function limitUpgrades (server: Server, limits: UpgradeLimits = { timeoutMs: UPGRADE_TIMEOUT_MS, perAddress: MAX_PENDING_PER_ADDRESS, total: MAX_PENDING }): PendingUpgrades {
  /** Oldest first (a Map keeps the order things were put in). */
  const pending = new Map<string, Entry>()
  const bySource = new Map<string, Set<string>>()

  const forget = (key: string): void => {
    const entry = pending.get(key)
    if (!entry) return
    clearTimeout(entry.timer)
    pending.delete(key)
    const keys = bySource.get(entry.source)
    keys?.delete(key)
    if (keys?.size === 0) bySource.delete(entry.source)
  }
  const drop = (key: string | undefined): void => {
    const entry = key === undefined ? undefined : pending.get(key)
    if (!entry) return
    forget(key!)
    entry.socket.destroy()
  }

  server.on('connection', (socket: Socket) => {
    if (socket.remoteAddress === undefined) return void socket.destroy()
    const key = keyOf(socket)
    const source = sourceOf(socket.remoteAddress)
    const mine = bySource.get(source)
    if (mine && mine.size >= limits.perAddress) drop(mine.values().next().value)
    if (pending.size >= limits.total) drop(pending.keys().next().value)
    const timer = setTimeout(() => drop(key), limits.timeoutMs)
    timer.unref()
    pending.set(key, { socket, source, timer })
    bySource.set(source, (bySource.get(source) ?? new Set<string>()).add(key))
    socket.once('close', () => { if (pending.get(key)?.socket === socket) forget(key) })
  })

  return {
    accepted: (socket) => forget(keyOf(socket)),
    size: () => pending.size,
  }
}
