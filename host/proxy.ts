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
import { SafeName } from '../tree/wire.js'
import { parsePort } from '../venoms/ports/tree.js'
import { answerHeaders, answerWithoutLogin, COOKIE, cookieOf, forwardedHeaders, sameOrigin } from './headers.js'
import { atTime, bearer, endOf, expired, type TokenRecord, type TokenStore } from './tokens.js'

/** A ports path; its names and port are checked as written, never decoded (no second spelling of one port). */
const ROUTE = /^\/nodes\/([^/?]+)\/(?:sandboxes\/([^/?]+)\/)?ports\/([^/?]+)(\/[^?]*)?(\?.*)?$/
const LOGIN = /^\/\.herds\/login(\?.*)?$/
/** A "." or ".." segment, as written or escaped: a proxy in front would read the path otherwise than the host. */
const DOT_SEGMENT = /\/(?:\.|%2e){1,2}(?:\/|$)/i
/** Sessions the login page has made, at most; the oldest goes first. */
export const MAX_SESSIONS = 10_000
/** Sessions of one token, at most: its oldest goes first, so one token cannot push everyone else's out. */
export const MAX_SESSIONS_PER_TOKEN = 100
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
  /** A token was revoked: what was opened with it is closed, and its logins end. */
  revoked (name: string): void
}

/** A ports path taken apart: rest is the server's path and query (none: no slash after the port); exposure is undefined when nothing is exposed there. */
interface Target { exposure?: Exposure, path: string, rest?: string, query: string }
/** Who a request is from: a token, until when (its expiry or its login's end), and the login (by cookie) if any. */
interface Caller { record: TokenRecord, until: number, session?: string }
interface Session { token: string, hash: string, until: number }
type Refusal = { status: number, why: string, location?: string }

export function portProxy (deps: ProxyDeps): Proxy {
  const sessions = new Map<string, Session>()
  const open = new Map<string, Set<Duplex>>()
  /** Tunnels by the token ("token:<name>") and the login ("session:<id>") that opened them, so either ending closes them. */
  const held = new Map<string, Set<Duplex>>()
  const closeHeld = (key: string): void => {
    for (const tunnel of held.get(key) ?? []) tunnel.destroy()
    held.delete(key)
  }
  const endSession = (id: string): void => { sessions.delete(id); closeHeld(`session:${id}`) }
  deps.exposures.onRemove = (e) => {
    for (const tunnel of open.get(exposurePath(e)) ?? []) tunnel.destroy()
    open.delete(exposurePath(e))
  }

  /** The exposure a ports path names (if any); undefined when the path is not a ports path at all. */
  const route = (url: string): Target | undefined => {
    const match = url.match(ROUTE)
    if (!match) return undefined
    const [, node, sandbox, portName, rest, query = ''] = match
    const port = parsePort(portName)
    const named = SafeName.safeParse(node).success && (sandbox === undefined || SafeName.safeParse(sandbox).success) && port !== undefined && !DOT_SEGMENT.test(rest ?? '')
    const exposure = named ? deps.exposures.get(node, sandbox ?? null, port) : undefined
    return { exposure, path: url.split('?')[0], rest: rest === undefined ? undefined : rest + query, query }
  }

  /** Who sent the request: its Authorization header, else its login cookie; undefined when neither is good. */
  const callerOf = (req: IncomingMessage): Caller | undefined => {
    const secret = bearer(req.headers.authorization)
    if (secret) {
      const record = deps.tokens.verify(secret)
      return record && { record, until: endOf(record) }
    }
    const id = cookieOf(req.headers.cookie, COOKIE)
    const session = id === undefined ? undefined : sessions.get(id)
    if (!session || session.until < Date.now()) return undefined
    const record = deps.tokens.get(session.token)
    // The same token, not one made since under its name: a revoked token's logins stay ended.
    if (!record || record.hash !== session.hash || expired(record)) return undefined
    return { record, until: Math.min(session.until, endOf(record)), session: id }
  }

  /** Why the request may not go on, or who it is from (null for a public port). */
  const check = (req: IncomingMessage, target: Target, upgrade: boolean): { refusal: Refusal } | { caller: Caller | null, exposure: Exposure } => {
    const { exposure } = target
    let caller: Caller | null = null
    if (!exposure?.public) {
      // Asked before whether it is exposed, so no one without a token learns which ports are.
      const found = callerOf(req)
      if (!found) return { refusal: { status: 401, why: `${target.path} needs a run token: send Authorization: Bearer <token>, or log in at /.herds/login?next=${target.path}` } }
      if (found.record.scope !== 'run' && found.record.scope !== 'admin') return { refusal: { status: 403, why: `the token "${found.record.name}" has scope ${found.record.scope}; an exposed port needs run (or admin)` } }
      if (found.session !== undefined && (upgrade || !SAFE_METHODS.has(req.method ?? '')) && !sameOrigin(req)) {
        return { refusal: { status: 403, why: `a request from ${String(req.headers.origin)} may not use this host's login; send Authorization: Bearer <token>` } }
      }
      caller = found
    }
    if (!exposure) return { refusal: { status: 404, why: `${target.path} is not an exposed port (mkdir it under the namespace to expose it)` } }
    if (target.rest === undefined) return { refusal: { status: 308, why: 'with a slash', location: `${exposurePath(exposure)}/${target.query}` } }
    return { caller, exposure }
  }

  const connect = async (exposure: Exposure): Promise<Duplex> => {
    const tunnel = await openTunnel(treeTunnelFiles(deps.namespace), exposure.sandbox ? `/nodes/${exposure.node}/sandboxes/${exposure.sandbox}/ports/tcp/${exposure.port}` : `/nodes/${exposure.node}/ports/tcp/${exposure.port}`)
    if (!deps.exposures.get(exposure.node, exposure.sandbox, exposure.port)) {
      tunnel.destroy()
      throw new HerdsError('ENOENT', `${exposurePath(exposure)} was unexposed meanwhile`)
    }
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

  /** Ties a tunnel to the token it was opened with: it closes when the token is revoked or expires, or its login ends. */
  const tie = (tunnel: Duplex, caller: Caller | null): void => {
    if (!caller) return
    const keys = [`token:${caller.record.name}`, ...(caller.session === undefined ? [] : [`session:${caller.session}`])]
    for (const key of keys) held.set(key, (held.get(key) ?? new Set<Duplex>()).add(tunnel))
    const cancel = atTime(caller.until, () => tunnel.destroy())
    tunnel.once('close', () => {
      cancel()
      for (const key of keys) {
        const set = held.get(key)
        set?.delete(tunnel)
        if (set?.size === 0) held.delete(key)
      }
    })
  }

  /** Makes a login for a token; past the bounds, its own oldest login ends first, then anyone's oldest. */
  const startSession = (record: TokenRecord): string => {
    const mine = [...sessions].filter(([, s]) => s.token === record.name)
    if (mine.length >= MAX_SESSIONS_PER_TOKEN) endSession(mine[0][0])
    while (sessions.size >= MAX_SESSIONS) endSession(sessions.keys().next().value!)
    const id = randomBytes(24).toString('base64url')
    sessions.set(id, { token: record.name, hash: record.hash, until: Date.now() + SESSION_MS })
    return id
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
    // Another site may not log a browser in (to a token of its choosing).
    if (!sameOrigin(req)) return void res.writeHead(403, { 'content-type': 'text/plain' }).end(`a login from ${String(req.headers.origin)} is refused: log in on this host's own page\n`)
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
      // Off the leash only now: a login that never finishes stays bounded as any connection without a token.
      deps.accepted(req.socket)
      const id = startSession(record)
      res.writeHead(303, {
        location: to,
        'set-cookie': `${COOKIE}=${id}; Path=/nodes/; HttpOnly; SameSite=Lax; Max-Age=${SESSION_MS / 1000}${req.socket && 'encrypted' in req.socket ? '; Secure' : ''}`,
      }).end()
    })
  }

  /**
   * One client connection's requests, taken one after another as HTTP/1.1
   * answers them: a pipeline of a thousand requests holds one tunnel, not a
   * thousand. When the connection closes, every request still in line is gone.
   */
  const lines = new WeakMap<Socket, { tail: Promise<void>, waiting: Set<() => void> }>()
  const lineOf = (socket: Socket): { tail: Promise<void>, waiting: Set<() => void> } => {
    let line = lines.get(socket)
    if (!line) {
      const made = line = { tail: Promise.resolve(), waiting: new Set<() => void>() }
      lines.set(socket, made)
      socket.once('close', () => { for (const leave of [...made.waiting]) leave() })
    }
    return line
  }

  /** Carries one request to the server and its answer back, in its turn on its connection. */
  const pass = (req: IncomingMessage, res: ServerResponse, exposure: Exposure, rest: string, caller: Caller | null): void => {
    const line = lineOf(req.socket)
    let tunnel: Duplex | undefined
    let gone = false
    let next!: () => void
    const previous = line.tail
    line.tail = new Promise<void>((resolve) => { next = resolve })
    const leave = (): void => {
      if (gone) return
      gone = true
      line.waiting.delete(leave)
      tunnel?.destroy()
      next()
    }
    line.waiting.add(leave)
    res.once('close', leave)
    previous.then(async () => {
      if (gone) return
      let made: Duplex
      try {
        made = await connect(exposure)
      } catch (err) {
        const error = failed(exposure, err)
        if (!gone) res.writeHead(502, { 'content-type': 'text/plain' }).end(`cannot reach ${exposurePath(exposure)}: ${error.message}\n`)
        return
      }
      if (gone) return void made.destroy()
      tunnel = made
      tie(made, caller)
      const out = request({ method: req.method, path: rest, headers: forwardedHeaders(req, exposurePath(exposure)), createConnection: () => made as Socket }, (answer) => {
        try {
          res.writeHead(answer.statusCode ?? 502, answerHeaders(answer.rawHeaders))
        } catch {
          return void res.destroy() // an answer Node would not send on
        }
        answer.pipe(res)
        answer.on('error', () => res.destroy())
      })
      out.on('error', (err) => {
        const error = failed(exposure, err)
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end(`the server did not answer: ${error.message}\n`)
        else res.destroy()
      })
      req.pipe(out)
    }).catch(() => res.destroy())
  }

  return {
    request: (req, res) => {
      const url = req.url ?? '/'
      if (LOGIN.test(url)) { login(req, res); return true }
      const target = route(url)
      if (!target) return false
      const checked = check(req, target, false)
      if ('refusal' in checked) {
        const { status, why, location } = checked.refusal
        res.writeHead(status, { 'content-type': 'text/plain', ...(location ? { location } : {}), ...(status === 401 ? { 'www-authenticate': 'Bearer' } : {}) }).end(why + '\n')
        return true
      }
      deps.accepted(req.socket)
      pass(req, res, checked.exposure, target.rest!, checked.caller)
      return true
    },

    upgrade: (req, socket, head) => {
      const target = route(req.url ?? '/')
      if (!target) return false
      const refuse = (status: number, why: string): void => { socket.end(`HTTP/1.1 ${status} ${STATUS[status] ?? 'Refused'}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${why}\n`) }
      const checked = check(req, target, true)
      if ('refusal' in checked) { refuse(checked.refusal.status === 308 ? 404 : checked.refusal.status, checked.refusal.why); return true }
      const { exposure, caller } = checked
      deps.accepted(socket)
      connect(exposure).then((tunnel) => {
        if (socket.destroyed) return void tunnel.destroy()
        tie(tunnel, caller)
        // The request as it came, to its new path, without the token: then bytes both ways.
        const headers = forwardedHeaders(req, exposurePath(exposure), true)
        const lines = [`${req.method} ${target.rest} HTTP/1.1`, ...Object.entries(headers).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((one) => `${k}: ${String(one)}`))]
        tunnel.write(lines.join('\r\n') + '\r\n\r\n')
        if (head.length > 0) tunnel.write(head)
        const answer = answerWithoutLogin()
        for (const end of [tunnel, answer]) end.on('error', () => socket.destroy())
        socket.on('error', () => tunnel.destroy())
        socket.once('close', () => tunnel.destroy())
        tunnel.once('close', () => socket.destroy())
        socket.pipe(tunnel)
        tunnel.pipe(answer).pipe(socket)
      }, (err: unknown) => {
        const error = failed(exposure, err)
        refuse(502, `cannot reach ${exposurePath(exposure)}: ${error.message}`)
      })
      return true
    },

    revoked: (name) => {
      for (const [id, session] of sessions) if (session.token === name) endSession(id)
      closeHeld(`token:${name}`)
    },
  }
}

const STATUS: Record<number, string> = { 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 502: 'Bad Gateway' }

/** Methods a cross-site form or link may send anyway; only they may use the login cookie from another origin. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** Where the login page may send you: a ports path on this host, written in plain URL characters; else back to itself. */
function safeNext (next: string | null): string {
  return next && /^[\x21-\x7e]+$/.test(next) && ROUTE.test(next) ? next : '/.herds/login'
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
