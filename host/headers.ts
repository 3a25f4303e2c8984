/**
 * Headers at the proxy's edge: which origin a request comes from, what of a
 * request reaches the server (not the token, not the login), and what of the
 * server's answer reaches the browser (nothing that sets or clears the login).
 */
import type { IncomingMessage } from 'node:http'
import { Transform, type TransformCallback } from 'node:stream'

/** The host's login cookie. */
export const COOKIE = 'herds_session'
/** The most of a server's answer to an upgrade read before its end (its status line and headers). */
const MAX_ANSWER_HEAD = 64 * 1024

/**
 * Is the request from a page of this host, or from no page at all (a program
 * sends no Origin)? The host a browser was sent to is the Host header, or the
 * one a proxy in front says it was; a page of another site cannot set either.
 */
export function sameOrigin (req: IncomingMessage): boolean {
  const origin = req.headers.origin
  if (origin === undefined) return true
  // A page that sends no referrer sends "null" even to its own origin; the browser says where it came from.
  if (origin === 'null') return req.headers['sec-fetch-site'] === 'same-origin'
  const proto = first(req.headers['x-forwarded-proto']) ?? ('encrypted' in req.socket ? 'https' : 'http')
  const host = first(req.headers['x-forwarded-host']) ?? req.headers.host
  try {
    return new URL(origin).origin === new URL(`${proto}://${host ?? ''}`).origin
  } catch {
    return false
  }
}

/** The first of a header's values (a proxy may list several, the nearest client first). */
function first (value: string | string[] | undefined): string | undefined {
  const one = Array.isArray(value) ? value[0] : value
  return one?.split(',')[0].trim() || undefined
}

/** Is this Set-Cookie (or Clear-Site-Data) header one that would set or clear the host's login? */
function touchesLogin (name: string, value: string): boolean {
  const lower = name.toLowerCase()
  if (lower === 'clear-site-data') return true
  // A browser trims the name: " herds_session =x" sets herds_session.
  return lower === 'set-cookie' && value.split('=')[0].trim() === COOKIE
}

/** Headers of one hop, never passed on by a proxy: each side's connection is its own. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization']

/** The hop-by-hop names of a message: the standard ones and those its Connection header lists. */
function hopByHop (connection: string | string[] | undefined): Set<string> {
  const listed = ([] as string[]).concat(connection ?? []).flatMap((v) => v.split(',')).map((name) => name.trim().toLowerCase())
  return new Set([...HOP_BY_HOP, ...listed.filter(Boolean)])
}

/** A server's answer headers (raw pairs) for the browser: without this hop's headers, and none that sets or clears the login. */
export function answerHeaders (raw: string[]): string[] {
  const connection: string[] = []
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i].toLowerCase() === 'connection') connection.push(raw[i + 1])
  const hop = hopByHop(connection)
  const kept: string[] = []
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (!hop.has(raw[i].toLowerCase()) && !touchesLogin(raw[i], raw[i + 1])) kept.push(raw[i], raw[i + 1])
  }
  return kept
}

/**
 * The bytes of a server's answer to an upgrade, with its head's login headers
 * dropped; after the head, bytes pass as they are. A head longer than 64 KiB
 * fails the stream.
 */
export function answerWithoutLogin (): Transform {
  let head: Buffer | null = Buffer.alloc(0)
  return new Transform({
    transform (chunk: Buffer, _encoding, done: TransformCallback) {
      if (head === null) return done(null, chunk)
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) return done(head.length > MAX_ANSWER_HEAD ? new Error('the server\'s answer has no end of its head') : null)
      const lines = head.subarray(0, end).toString('latin1').split('\r\n')
      const kept = lines.filter((line, i) => {
        const colon = line.indexOf(':')
        return i === 0 || colon < 0 || !touchesLogin(line.slice(0, colon).trim(), line.slice(colon + 1).trim())
      })
      const rest = head.subarray(end)
      head = null
      done(null, Buffer.concat([Buffer.from(kept.join('\r\n'), 'latin1'), rest]))
    },
  })
}

/**
 * The request's headers for the server: its token and login cookie taken out,
 * where it came from added, and (but for an upgrade, which asks for the
 * connection itself) without this hop's headers.
 */
export function forwardedHeaders (req: IncomingMessage, prefix: string, upgrade = false): Record<string, string | string[]> {
  const hop = upgrade ? new Set<string>() : hopByHop(req.headers.connection)
  const headers: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name === 'authorization' || hop.has(name)) continue
    if (name === 'cookie') {
      const kept = String(value).split(/;\s*/).filter((pair) => pair && pair.split('=')[0].trim() !== COOKIE).join('; ')
      if (kept) headers.cookie = kept
      continue
    }
    headers[name] = value
  }
  headers['x-forwarded-for'] = req.socket.remoteAddress ?? ''
  headers['x-forwarded-proto'] = 'encrypted' in req.socket ? 'https' : 'http'
  if (req.headers.host) headers['x-forwarded-host'] = req.headers.host
  headers['x-forwarded-prefix'] = prefix
  return headers
}

/** One cookie's value from a Cookie header. */
export function cookieOf (header: string | undefined, name: string): string | undefined {
  for (const pair of (header ?? '').split(/;\s*/)) {
    if (pair.startsWith(`${name}=`)) return pair.slice(name.length + 1)
  }
  return undefined
}
