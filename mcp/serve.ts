/** The two ways `herds mcp` is reached: stdio (a harness starts it) and Streamable HTTP on 127.0.0.1. */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js'
import type { Herds } from '../mount/sdk/herds.js'
import { HTTP_MAX_BODY_BYTES, HTTP_MAX_SESSIONS } from './limits.js'
import { createMcpServer } from './server.js'
import type { Needs } from './tools.js'

/**
 * The tools a token may use, told by the modes the host shows (they tell the
 * truth for the token, docs/files.md): `new` is readable with run scope only.
 */
export async function scopeOf (herds: Herds): Promise<Needs> {
  const probe = await herds.files.stat('/.herds/venoms/run/new').catch(() => undefined)
  return probe && (probe.mode & 0o444) === 0 ? 'read' : 'run'
}

/** Serves one client on stdin/stdout until stdin ends. */
export async function serveStdio (herds: Herds, scope: Needs): Promise<void> {
  const server = await createMcpServer(herds, scope)
  const transport = new StdioServerTransport()
  const closed = new Promise<void>((resolve) => {
    transport.onclose = resolve
    process.stdin.once('end', resolve)
  })
  await server.connect(transport)
  await closed
  await server.close().catch(() => {})
}

export interface HttpServer {
  url: string
  close (): Promise<void>
}

/** A session not used for this long is closed, so sessions left behind do not fill the table. */
const IDLE_SESSION_MS = 10 * 60 * 1000

/**
 * Serves Streamable HTTP at http://127.0.0.1:PORT/mcp. Every request carries
 * `Authorization: Bearer <the token herds mcp runs with>`: any program on the
 * machine can reach a loopback port, and the token is what it would need anyway.
 */
export async function serveHttp (herds: Herds, scope: Needs, token: string, port: number): Promise<HttpServer> {
  const sessions = new Map<string, { transport: StreamableHTTPServerTransport, used: number }>()
  const wanted = digest(`Bearer ${token}`)
  let allowedHosts: string[] = []

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (new URL(req.url ?? '/', 'http://x').pathname !== '/mcp') return refuse(res, 404, 'not found: the MCP endpoint is /mcp')
    if (!timingSafeEqual(digest(req.headers.authorization ?? ''), wanted)) return refuse(res, 401, 'send Authorization: Bearer <the Herds token herds mcp runs with>')
    const body = req.method === 'POST' ? await readBody(req) : undefined
    if (body instanceof Error) return refuse(res, 400, body.message)
    const id = req.headers['mcp-session-id']
    if (typeof id === 'string') {
      const session = sessions.get(id)
      if (!session) return refuse(res, 404, 'no such session (it ended or expired): initialize again')
      session.used = Date.now()
      return session.transport.handleRequest(req, res, body)
    }
    if (req.method !== 'POST' || !isInitializeRequest(body)) return refuse(res, 400, 'no session: the first request is initialize')
    closeIdle(sessions)
    if (sessions.size >= HTTP_MAX_SESSIONS) return refuse(res, 503, `${HTTP_MAX_SESSIONS} sessions are open: end one (DELETE /mcp) first`)
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      onsessioninitialized: (sid) => { sessions.set(sid, { transport, used: Date.now() }) },
      enableDnsRebindingProtection: true,
      allowedHosts,
    })
    transport.onclose = () => { if (transport.sessionId) sessions.delete(transport.sessionId) }
    const server = await createMcpServer(herds, scope)
    await server.connect(transport)
    await transport.handleRequest(req, res, body)
  }

  const http = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) refuse(res, 500, err instanceof Error ? err.message : String(err))
      else res.destroy()
    })
  })
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject)
    http.listen(port, '127.0.0.1', () => resolve())
  })
  const bound = (http.address() as AddressInfo).port
  allowedHosts = [`127.0.0.1:${bound}`, `localhost:${bound}`]
  return {
    url: `http://127.0.0.1:${bound}/mcp`,
    close: async () => {
      for (const { transport } of sessions.values()) await transport.close().catch(() => {})
      await new Promise<void>((resolve) => { http.close(() => resolve()); http.closeAllConnections() })
    },
  }
}

/** Compared as digests, so the comparison takes the same time whatever was sent. */
const digest = (value: string): Buffer => createHash('sha256').update(value).digest()

function closeIdle (sessions: Map<string, { transport: StreamableHTTPServerTransport, used: number }>): void {
  for (const [id, session] of sessions) {
    if (Date.now() - session.used > IDLE_SESSION_MS) {
      sessions.delete(id)
      session.transport.close().catch(() => {})
    }
  }
}

/** The request's JSON body, at most HTTP_MAX_BODY_BYTES; an Error says what is wrong with it. */
async function readBody (req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > HTTP_MAX_BODY_BYTES) return new Error(`a request body is at most ${HTTP_MAX_BODY_BYTES} bytes`)
    chunks.push(chunk as Buffer)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    return new Error('the body is not JSON')
  }
}

/** A JSON-RPC error answer outside any session. */
function refuse (res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }))
}
