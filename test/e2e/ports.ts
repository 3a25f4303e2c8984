/**
 * Servers for the ports tests, run as jobs in a sandbox on a real node: a
 * Python http.server, and a small Node server with an HTTP echo of the
 * request, a WebSocket echo, an SSE stream, bytes on demand, a request never
 * answered (/hang), Set-Cookies of the host's login (/set-cookie, and the
 * WebSocket's handshake), and a raw TCP echo on a second port.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { Agent, request } from 'node:http'
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { connect } from 'node:net'
import { dirname, join } from 'node:path'
import type { Test } from 'tap'
import type { Job, Sandbox } from '../../mount/sdk/index.js'
import { FENCE_RACE } from './harness.js'

const SERVER = String.raw`
const http = require('node:http')
const net = require('node:net')
const { WebSocketServer } = require('./ws') // copied in by copyWs
const server = http.createServer((req, res) => {
  if (req.url === '/sse') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    let n = 0
    const timer = setInterval(() => { res.write('data: tick ' + (++n) + '\n\n'); if (n === 3) { clearInterval(timer); res.end() } }, 100)
    return
  }
  if (req.url === '/hang') return // never answers
  if (req.url === '/set-cookie') return res.writeHead(200, { 'set-cookie': ['herds_session=fixed; Path=/nodes/', ' herds_session =spaced; Path=/nodes/', 'app=2'], 'clear-site-data': '"cookies"' }).end('set\n')
  const bytes = req.url.match(/^\/bytes\/(\d+)$/)
  if (bytes) {
    let left = Number(bytes[1])
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': left })
    const piece = Buffer.alloc(64 * 1024, 0x78)
    const pump = () => { while (left > 0) { const n = Math.min(left, piece.length); left -= n; if (!res.write(piece.subarray(0, n))) return res.once('drain', pump) } res.end() }
    return pump()
  }
  let body = 0
  req.on('data', (d) => { body += d.length })
  req.on('end', () => res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body })))
})
new WebSocketServer({ server })
  .on('headers', (headers) => headers.push('Set-Cookie: herds_session=from-ws; Path=/nodes/', 'Set-Cookie: app=ws'))
  .on('connection', (ws) => ws.on('message', (m, binary) => ws.send(m, { binary })))
server.listen(0, '127.0.0.1', () => {
  const echo = net.createServer((s) => s.pipe(s)).listen(0, '127.0.0.1', () => {
    console.log('ports ' + server.address().port + ' ' + echo.address().port)
  })
})
`

/** The ws package's folder here: copied into the sandbox, since the fence hides a checkout under /tmp. */
const WS_DIR = dirname(createRequire(import.meta.url).resolve('ws/package.json'))

/** Copies the ws package (its .js files and package.json) into the sandbox's workspace, at ws/. */
async function copyWs (box: Sandbox): Promise<void> {
  for (const folder of ['', 'lib']) {
    await box.mkdir(join('ws', folder)).catch((err: { code?: string }) => { if (err.code !== 'EEXIST') throw err })
    for (const name of readdirSync(join(WS_DIR, folder))) {
      if (name === 'package.json' || name.endsWith('.js') || name.endsWith('.mjs')) await box.writeFile(join('ws', folder, name), readFileSync(join(WS_DIR, folder, name)))
    }
  }
}

/** Starts `cmd` in the sandbox and waits for its stdout to match `ready`; run again past the fence's race; killed at the end. */
export async function startServer (t: Test, box: Sandbox, cmd: string, ready: RegExp, env: Record<string, string> = {}): Promise<{ job: Job, match: RegExpMatchArray }> {
  for (let tries = 1; ; tries++) {
    const job = await box.spawn(cmd, { env })
    t.teardown(() => job.kill('KILL').catch(() => {}))
    let out = ''
    let match: RegExpMatchArray | null = null
    const seen = new AbortController()
    await job.follow('output', (chunk) => {
      out += chunk.toString()
      match = out.match(ready)
      if (match) seen.abort()
    }, { signal: seen.signal }).catch((err: { code?: string }) => { if (err.code !== 'ECANCELED') throw err })
    if (match) return { job, match }
    if (!FENCE_RACE.test(out) || tries === 5) throw new Error(`the server did not start: ${out}`)
  }
}

/** The Node server above, written into the sandbox's workspace and started; its HTTP and TCP echo ports. */
export async function startNodeServer (t: Test, box: Sandbox): Promise<{ http: number, echo: number }> {
  await box.writeFile('server.cjs', SERVER)
  await copyWs(box)
  // NODE_OPTIONS=: tap's spawn hook hands every child its preload, which a sandbox cannot see when the checkout is under /tmp.
  const { match } = await startServer(t, box, `NODE_OPTIONS= exec ${process.execPath} server.cjs`, /ports (\d+) (\d+)\n/)
  return { http: Number(match[1]), echo: Number(match[2]) }
}

export interface Fetched { status: number, headers: Record<string, string | string[] | undefined>, body: Buffer }

/** One HTTP request on a connection of its own. */
export function fetchRaw (url: string, opts: { headers?: Record<string, string>, method?: string, body?: Buffer, agent?: Agent } = {}): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) })).on('error', reject)
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

/** The SHA-256 of a download, streamed (a 100 MB body is never held whole). */
export function sha256Of (url: string, headers: Record<string, string> = {}): Promise<{ status: number, sha: string, bytes: number }> {
  return new Promise((resolve, reject) => {
    request(url, { headers, agent: false }, (res) => {
      const hash = createHash('sha256')
      let bytes = 0
      res.on('data', (c: Buffer) => { hash.update(c); bytes += c.length }).on('end', () => resolve({ status: res.statusCode!, sha: hash.digest('hex'), bytes })).on('error', reject)
    }).on('error', reject).end()
  })
}

/** curl's download of `url`, as a person runs it: the status and the SHA-256 of the body (streamed, never held whole). */
export function curlSha256 (url: string, headers: Record<string, string> = {}): Promise<{ status: number, sha: string, bytes: number }> {
  return new Promise((resolve, reject) => {
    const curl = spawn('curl', ['-sS', '--write-out', '%{stderr}%{http_code}', ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), url], { stdio: ['ignore', 'pipe', 'pipe'] })
    const hash = createHash('sha256')
    let bytes = 0
    let status = ''
    curl.stdout.on('data', (c: Buffer) => { hash.update(c); bytes += c.length })
    curl.stderr.on('data', (c: Buffer) => { status += c.toString() })
    curl.on('error', reject)
    curl.on('close', (code) => code === 0 ? resolve({ status: Number(status.trim()), sha: hash.digest('hex'), bytes }) : reject(new Error(`curl exited ${code}: ${status}`)))
  })
}

/** Sends `data` to a TCP echo at 127.0.0.1:port, ends, and gives back all it answered. */
export function echoThrough (port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.end(data))
    const chunks: Buffer[] = []
    socket.on('data', (c) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks))).on('error', reject)
  })
}
