/**
 * The host's HTTP side for exposed ports: a request for
 * /nodes/<n>[/sandboxes/<s>]/ports/<port>/<rest> goes to that server as
 * /<rest>, through a tunnel over the node's connection (tree/tunnel.ts), with
 * streamed bodies and WebSocket upgrades passed through. A run token is asked
 * for (Authorization: Bearer, or the cookie /.herds/login sets) unless the
 * port is public. The token itself never reaches the server.
 */
import { randomBytes } from 'node:crypto'
import { request, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { HerdsError, toHerdsError } from '../tree/errno.js'
import type { Tree } from '../tree/tree.js'
import { openTunnel, treeTunnelFiles } from '../tree/tunnel.js'
import type { Journal } from './journal.js'
import { exposurePath, type Exposure, type Exposures } from './ports.js'
import { bearer, expired, type TokenRecord, type TokenStore } from './tokens.js'

const ROUTE = /^\/nodes\/([^/?]+)\/(?:sandboxes\/([^/?]+)\/)?ports\/(\d{1,5})(\/[^?]*)?(\?.*)?$/
const LOGIN = /^\/\.herds\/login(\?.*)?$/
const COOKIE = 'herds_session'
/** Sessions the login page has made, at most; the oldest goes first. */
export const MAX_SESSIONS = 10_000
/** How long a login lasts. */
export const SESSION_MS = 12 * 3600_000
/** The most of a login form read. */
const MAX_FORM_BYTES = 16 * 1024

export interface ProxyDeps {
  exposures: Exposures
  /** The host's own namespace (not a session's): the host checked the token itself. */
  namespace: Tree
  tokens: TokenStore
  journal: Journal
  /** The connection showed a token (or asked for a public port): the upgrade leash lets go of it. */
  accepted (socket: Socket): void
}

export interface Proxy {
  /** Serves the request if it is for an exposed port or the login page; false when it is not this proxy's. */
  request (req: IncomingMessage, res: ServerResponse): boolean
  upgrade (req: IncomingMessage, socket: Socket, head: Buffer): boolean
}

interface Target { exposure: Exposure, rest: string }

export function portProxy (deps: ProxyDeps): Proxy {
  const sessions = new Map<string, { token: string, until: number }>()
  const open = new Map<string, Set<Duplex>>()
  deps.exposures.onRemove = (e) => {
    for (const tunnel of open.get(exposurePath(e)) ?? []) tunnel.destroy()
    open.delete(exposurePath(e))
  }

  /** The exposure a path names, or why not (an HTTP status and words). */
  const route = (url: string): Target | { status: number, why: string, location?: string } | undefined => {
    const match = url.match(ROUTE)
    if (!match) return undefined
    const [, node, sandbox, port, rest, query] = match
    const exposure = deps.exposures.get(decodeURIComponent(node), sandbox === undefined ? null : decodeURIComponent(sandbox), Number(port))
    if (!exposure) return { status: 404, why: `${url.split('?')[0]} is not an exposed port (mkdir it under the namespace to expose it)` }
    if (rest === undefined) return { status: 308, why: 'with a slash', location: `${exposurePath(exposure)}/${query ?? ''}` }
    return { exposure, rest: rest + (query ?? '') }
  }

  /** The token of a request: its Authorization header, else its login cookie. */
  const tokenOf = (req: IncomingMessage): TokenRecord | undefined => {
    const secret = bearer(req.headers.authorization)
    if (secret) return deps.tokens.verify(secret)
    const id = cookieOf(req.headers.cookie, COOKIE)
    const session = id === undefined ? undefined : sessions.get(id)
    if (!session || session.until < Date.now()) return undefined
    const record = deps.tokens.get(session.token)
    return record && !expired(record) ? record : undefined
  }

  /** null when the request may go on; else the status and words to refuse it with. */
  const refusal = (req: IncomingMessage, exposure: Exposure): { status: number, why: string } | null => {
    if (exposure.public) return null
    const token = tokenOf(req)
    if (!token) return { status: 401, why: `${exposurePath(exposure)} needs a run token: send Authorization: Bearer <token>, or log in at /.herds/login?next=${exposurePath(exposure)}/` }
    if (token.scope !== 'run' && token.scope !== 'admin') return { status: 403, why: `the token "${token.name}" has scope ${token.scope}; an exposed port needs run (or admin)` }
    return null
  }

  const connect = async (exposure: Exposure): Promise<Duplex> => {
    const tunnel = await openTunnel(treeTunnelFiles(deps.namespace), exposure.sandbox ? `/nodes/${exposure.node}/sandboxes/${exposure.sandbox}/ports/tcp/${exposure.port}` : `/nodes/${exposure.node}/ports/tcp/${exposure.port}`)
    const key = exposurePath(exposure)
    const counts = deps.exposures.trafficOf(exposure)
    const tunnels = open.get(key) ?? new Set<Duplex>()
    open.set(key, tunnels.add(tunnel))
    counts.open++
    counts.requests++
    tunnel.on('data', (chunk: Buffer) => { counts.bytesIn += chunk.length })
    const write = tunnel.write.bind(tunnel)
    tunnel.write = ((chunk: Buffer, ...rest: never[]) => { counts.bytesOut += chunk.length; return write(chunk, ...rest) }) as typeof tunnel.write
    tunnel.once('close', () => { counts.open--; tunnels.delete(tunnel) })
    return tunnel
  }

  /** A connection that could not be made: 502, and a line in errors.log. */
  const failed = (exposure: Exposure, err: unknown): HerdsError => {
    const error = toHerdsError(err)
    const counts = deps.exposures.trafficOf(exposure)
    counts.errors++
    counts.lastError = `${new Date().toISOString()} ${error.code}: ${error.message}`
    deps.journal.refused(exposurePath(exposure), error)
    return error
  }

  const login = (req: IncomingMessage, res: ServerResponse): void => {
    const next = safeNext(new URL(req.url ?? '/', 'http://x').searchParams.get('next'))
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(LOGIN_PAGE(next))
      return
    }
    if (req.method !== 'POST') return void res.writeHead(405, { allow: 'GET, POST' }).end()
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => {
      body += chunk
      if (body.length > MAX_FORM_BYTES) { res.writeHead(413).end('too long\n'); req.destroy() }
    })
    req.on('end', () => {
      if (res.headersSent) return
      const form = new URLSearchParams(body)
      const record = deps.tokens.verify(form.get('token') ?? '')
      const to = safeNext(form.get('next'))
      if (!record || (record.scope !== 'run' && record.scope !== 'admin')) {
        deps.journal.refused('/.herds/login', new HerdsError('EACCES', record ? `the token "${record.name}" has scope ${record.scope}` : 'a token not known, revoked or expired'))
        res.writeHead(record ? 403 : 401, { 'content-type': 'text/plain' }).end(record ? `the token "${record.name}" has scope ${record.scope}; an exposed port needs run (or admin)\n` : 'the token is not known, revoked or expired\n')
        return
      }
      const id = randomBytes(24).toString('base64url')
      sessions.set(id, { token: record.name, until: Date.now() + SESSION_MS })
      while (sessions.size > MAX_SESSIONS) sessions.delete(sessions.keys().next().value!)
      res.writeHead(303, {
        location: to,
        'set-cookie': `${COOKIE}=${id}; Path=/nodes/; HttpOnly; SameSite=Lax; Max-Age=${SESSION_MS / 1000}${req.socket && 'encrypted' in req.socket ? '; Secure' : ''}`,
      }).end()
    })
  }

  return {
    request: (req, res) => {
      const url = req.url ?? '/'
      if (LOGIN.test(url)) { deps.accepted(req.socket); login(req, res); return true }
      const target = route(url)
      if (!target) return false
      if (!('exposure' in target)) {
        res.writeHead(target.status, { 'content-type': 'text/plain', ...(target.location ? { location: target.location } : {}) }).end(target.why + '\n')
        return true
      }
      const no = refusal(req, target.exposure)
      if (no) { res.writeHead(no.status, { 'content-type': 'text/plain', ...(no.status === 401 ? { 'www-authenticate': 'Bearer' } : {}) }).end(no.why + '\n'); return true }
      deps.accepted(req.socket)
      connect(target.exposure).then((tunnel) => {
        const out = request({ method: req.method, path: target.rest, headers: forwardedHeaders(req, target.exposure), createConnection: () => tunnel as Socket }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.rawHeaders)
          answer.pipe(res)
          answer.on('error', () => res.destroy())
        })
        out.on('error', (err) => {
          const error = failed(target.exposure, err)
          if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end(`the server did not answer: ${error.message}\n`)
          else res.destroy()
        })
        res.on('close', () => { tunnel.destroy() })
        req.pipe(out)
      }, (err: unknown) => {
        const error = failed(target.exposure, err)
        res.writeHead(502, { 'content-type': 'text/plain' }).end(`cannot reach ${exposurePath(target.exposure)}: ${error.message}\n`)
      })
      return true
    },

    upgrade: (req, socket, head) => {
      const target = route(req.url ?? '/')
      if (!target) return false
      const refuse = (status: number, why: string): void => { socket.end(`HTTP/1.1 ${status} ${STATUS[status] ?? 'Refused'}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${why}\n`) }
      if (!('exposure' in target)) { refuse(target.status === 308 ? 404 : target.status, target.why); return true }
      const no = refusal(req, target.exposure)
      if (no) { refuse(no.status, no.why); return true }
      deps.accepted(socket)
      connect(target.exposure).then((tunnel) => {
        // The request as it came, to its new path, without the token: then bytes both ways.
        const headers = forwardedHeaders(req, target.exposure)
        const lines = [`${req.method} ${target.rest} HTTP/1.1`, ...Object.entries(headers).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((one) => `${k}: ${String(one)}`))]
        tunnel.write(lines.join('\r\n') + '\r\n\r\n')
        if (head.length > 0) tunnel.write(head)
        tunnel.on('error', () => socket.destroy())
        socket.on('error', () => tunnel.destroy())
        socket.once('close', () => tunnel.destroy())
        tunnel.once('close', () => socket.destroy())
        socket.pipe(tunnel)
        tunnel.pipe(socket)
      }, (err: unknown) => {
        const error = failed(target.exposure, err)
        refuse(502, `cannot reach ${exposurePath(target.exposure)}: ${error.message}`)
      })
      return true
    },
  }
}

const STATUS: Record<number, string> = { 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 502: 'Bad Gateway' }

/** The request's headers for the server: its token and login cookie taken out, where it came from added. */
function forwardedHeaders (req: IncomingMessage, exposure: Exposure): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name === 'authorization') continue
    if (name === 'cookie') {
      const kept = String(value).split(/;\s*/).filter((pair) => pair && !pair.startsWith(`${COOKIE}=`)).join('; ')
      if (kept) headers.cookie = kept
      continue
    }
    headers[name] = value
  }
  headers['x-forwarded-for'] = req.socket.remoteAddress ?? ''
  headers['x-forwarded-proto'] = 'encrypted' in req.socket ? 'https' : 'http'
  if (req.headers.host) headers['x-forwarded-host'] = req.headers.host
  headers['x-forwarded-prefix'] = exposurePath(exposure)
  return headers
}

/** One cookie's value from a Cookie header. */
function cookieOf (header: string | undefined, name: string): string | undefined {
  for (const pair of (header ?? '').split(/;\s*/)) {
    if (pair.startsWith(`${name}=`)) return pair.slice(name.length + 1)
  }
  return undefined
}

/** Where the login page may send you: an exposed port's path on this host, nowhere else. */
function safeNext (next: string | null): string {
  return next && ROUTE.test(next) && !next.startsWith('//') ? next : '/.herds/login'
}

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

const LOGIN_PAGE = (next: string): string => `<!doctype html>
<meta charset="utf-8"><title>Herds: log in</title>
<form method="post" action="/.herds/login">
<p>A run token for this host's exposed ports (herds token show, or .herds/control/tokens/&lt;name&gt;/secret):</p>
<input type="password" name="token" autocomplete="off" size="60" autofocus>
<input type="hidden" name="next" value="${escapeHtml(next)}">
<button>Log in</button>
</form>
`
