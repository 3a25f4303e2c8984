// Ports exposed through the host, against real servers in a sandbox on a real node, through a real mount:
// mkdir makes one, url says where, tokens decide who, bodies stream, WebSocket and SSE pass, rmdir and a
// killed node close what is open, nothing listening is a 502 and a line in errors.log.
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, readdir, rmdir, writeFile } from 'node:fs/promises'
import { Agent } from 'node:http'
import { connect } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import WebSocket from 'ws'
import { Herds, type Sandbox } from '../../mount/sdk/index.js'
import { errnoOf } from './files.js'
import { herdsUp, startHostAndNode } from './harness.js'
import { curlSha256, fetchRaw, startNodeServer, startServer } from './ports.js'
import type { Socket } from 'node:net'

const up = await herdsUp(t, 'studio')
const herds = await Herds.connect({ url: up.url, token: up.adminToken })
t.teardown(() => herds.close())
const box: Sandbox = await herds.node('studio').sandbox('web')
const ports = await startNodeServer(t, box)
const boxPorts = join(up.nodeDir, 'sandboxes', 'web', 'ports')
const httpBase = up.url.replace(/^ws/, 'http')

/** Makes a token of `scope` through the mount and gives its secret. */
async function tokenOf (name: string, scope: string, expiresAt?: string): Promise<string> {
  await writeFile(join(up.mountpoint, '.herds/control/tokens/create'), JSON.stringify({ name, scope, expiresAt }))
  return (await readFile(join(up.mountpoint, `.herds/control/tokens/${name}/secret`), 'utf8')).trim()
}
const run = await tokenOf('runner', 'run')
const read = await tokenOf('reader', 'read')
const auth = { authorization: `Bearer ${run}` }

await mkdir(join(boxPorts, String(ports.http)))
const url = (await readFile(join(boxPorts, String(ports.http), 'url'), 'utf8')).trim()

t.test('mkdir exposes a port: url says where, ls lists it, the catalog too', async (t) => {
  t.equal(url, `${httpBase}/nodes/studio/sandboxes/web/ports/${ports.http}/`)
  t.ok((await readdir(boxPorts)).includes(String(ports.http)))
  t.same((await readdir(join(boxPorts, String(ports.http)))).sort(), ['status.json', 'url'])
  t.same((await readdir(boxPorts)).sort(), [String(ports.http), 'README.md', 'tcp'].sort(), 'the node\'s own README.md and tcp/ beside it')
  const listed = JSON.parse(await readFile(join(up.mountpoint, '.herds/catalog/ports.json'), 'utf8'))
  t.match(listed, [{ node: 'studio', sandbox: 'web', port: ports.http, public: false, url }])
  t.equal(await errnoOf(mkdir(join(boxPorts, String(ports.http)))), 'EEXIST')
  t.equal(await errnoOf(mkdir(join(boxPorts, 'http'))), 'EINVAL')
})

t.test('who may: no token 401, a read token 403, a run token 200; the token never reaches the server', async (t) => {
  t.equal((await fetchRaw(url)).status, 401)
  t.match((await fetchRaw(url)).body.toString(), /needs a run token/)
  t.equal((await fetchRaw(url, { headers: { authorization: `Bearer ${read}` } })).status, 403)
  t.equal((await fetchRaw(url, { headers: { authorization: 'Bearer herds_nonsense' } })).status, 401)
  const ok = await fetchRaw(`${url}a/b?c=d`, { headers: { ...auth, cookie: 'app=1' } })
  t.equal(ok.status, 200)
  const seen = JSON.parse(ok.body.toString())
  t.equal(seen.url, '/a/b?c=d', 'the server sees its own path')
  t.notOk(seen.headers.authorization, 'no Authorization reaches it')
  t.equal(seen.headers.cookie, 'app=1', 'its own cookies do')
  t.equal(seen.headers['x-forwarded-prefix'], `/nodes/studio/sandboxes/web/ports/${ports.http}`)
  const bare = await fetchRaw(url.replace(/\/$/, ''), { headers: auth })
  t.equal(bare.status, 308, 'without the slash: sent to it, so relative links work')
})

t.test('the login page sets a cookie that works in place of the header, and is not passed on', async (t) => {
  const form = new URLSearchParams({ token: run, next: new URL(url).pathname }).toString()
  const logged = await fetchRaw(`${httpBase}/.herds/login`, { method: 'POST', body: Buffer.from(form), headers: { 'content-type': 'application/x-www-form-urlencoded' } })
  t.equal(logged.status, 303)
  t.equal(logged.headers.location, new URL(url).pathname)
  const cookie = String(logged.headers['set-cookie']).split(';')[0]
  t.match(cookie, /^herds_session=/)
  const withCookie = await fetchRaw(url, { headers: { cookie } })
  t.equal(withCookie.status, 200)
  t.notOk(JSON.parse(withCookie.body.toString()).headers.cookie, 'the login cookie stays with the host')
  const bad = await fetchRaw(`${httpBase}/.herds/login`, { method: 'POST', body: Buffer.from(`token=${read}`), headers: { 'content-type': 'application/x-www-form-urlencoded' } })
  t.equal(bad.status, 403, 'a read token cannot log in for ports')
  const elsewhere = await fetchRaw(`${httpBase}/.herds/login`, { method: 'POST', body: Buffer.from(new URLSearchParams({ token: run, next: 'https://evil.example/' }).toString()), headers: { 'content-type': 'application/x-www-form-urlencoded' } })
  t.equal(elsewhere.headers.location, '/.herds/login', 'next goes nowhere off this host')
})

t.test('a 100 MB download streams whole, 100 requests at once succeed, status.json counts them', async (t) => {
  const made = await box.run('head -c 100000000 /dev/urandom > big.bin && sha256sum big.bin')
  const { match } = await startServer(t, box, 'exec python3 -u -m http.server 0 --bind 127.0.0.1', /port (\d+)/)
  await mkdir(join(boxPorts, match[1]))
  const pyUrl = (await readFile(join(boxPorts, match[1], 'url'), 'utf8')).trim()
  t.same(await curlSha256(`${pyUrl}big.bin`, auth), { status: 200, sha: made.stdout.split(' ')[0], bytes: 100_000_000 }, 'curl downloads 100 MB whole')
  t.equal((await curlSha256(`${pyUrl}big.bin`)).status, 401, 'and without the token, 401')
  // As browsers and HTTP clients do, over a pool of kept connections: a burst of more than 32 new
  // connections at once from one address meets the host's guard against half-sent requests.
  const agent = new Agent({ keepAlive: true, maxSockets: 16 })
  t.teardown(() => agent.destroy())
  const all = await Promise.all(Array.from({ length: 100 }, (_, i) => fetchRaw(`${url}r${i}`, { headers: auth, agent })))
  t.same(all.map((r) => r.status), Array(100).fill(200))
  const status = JSON.parse(await readFile(join(boxPorts, String(ports.http), 'status.json'), 'utf8'))
  t.ok(status.requests >= 100, `${status.requests} requests counted`)
  t.ok(status.bytesIn > 0 && status.bytesOut > 0)
})

t.test('WebSocket and SSE pass through the exposed URL', async (t) => {
  const ws = new WebSocket(url.replace(/^http/, 'ws'), { headers: auth })
  t.teardown(() => ws.terminate())
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
  const big = randomBytes(256 * 1024)
  const echoed = await new Promise<Buffer>((resolve) => { ws.once('message', (m: Buffer) => resolve(m)); ws.send(big) })
  t.ok(echoed.equals(big), 'a binary message came back the same')
  const refused = new WebSocket(url.replace(/^http/, 'ws'))
  const why = await new Promise<string>((resolve) => refused.once('unexpected-response', (_req, res) => resolve(String(res.statusCode))).once('error', (err) => resolve(err.message)))
  t.equal(why, '401', 'a WebSocket without a token is refused')
  const events = await new Promise<number>((resolve, reject) => {
    const { port } = new URL(url)
    const req = connect({ host: '127.0.0.1', port: Number(port) }, () => req.write(`GET ${new URL(url).pathname}sse HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${run}\r\n\r\n`))
    let seen = ''
    req.on('data', (d) => { seen += d.toString(); const n = (seen.match(/data: tick \d/g) ?? []).length; if (n === 3) { req.destroy(); resolve(n) } }).on('error', reject)
  })
  t.equal(events, 3)
})

t.test('rmdir closes the port and the connections open through it', async (t) => {
  const { match } = await startServer(t, box, 'exec python3 -u -m http.server 0 --bind 127.0.0.1', /port (\d+)/)
  const dir = join(boxPorts, match[1])
  await mkdir(dir)
  const slowUrl = (await readFile(join(dir, 'url'), 'utf8')).trim()
  const { port } = new URL(slowUrl)
  const socket = connect({ host: '127.0.0.1', port: Number(port) })
  socket.on('error', () => {})
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.write(`GET ${new URL(slowUrl).pathname}big.bin HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${run}\r\n\r\n`)
  await new Promise((resolve) => socket.once('data', resolve))
  socket.pause()
  await rmdir(dir)
  await new Promise((resolve) => socket.once('close', resolve).resume())
  t.pass('the open download was closed')
  t.equal((await fetchRaw(slowUrl, { headers: auth })).status, 404, 'and the port is no longer served')
})

t.test('nothing listening: 502 at once and a line in errors.log', async (t) => {
  await mkdir(join(up.nodeDir, 'ports', '1'))
  const res = await fetchRaw(`${httpBase}/nodes/studio/ports/1/`, { headers: auth })
  t.equal(res.status, 502)
  t.match(res.body.toString(), /nothing listens on port 1/)
  t.match(await readFile(join(up.mountpoint, '.herds/control/errors.log'), 'utf8'), /\/nodes\/studio\/ports\/1 ECONNREFUSED/)
  await rmdir(join(up.nodeDir, 'ports', '1'))
})

t.test('public ports: only an admin makes one, through control; it needs no token and says so', async (t) => {
  const control = join(up.mountpoint, '.herds/control/ports/create')
  await writeFile(control, JSON.stringify({ node: 'studio', sandbox: 'web', port: ports.echo, public: true }))
  const status = JSON.parse(await readFile(join(boxPorts, String(ports.echo), 'status.json'), 'utf8'))
  t.match(status, { public: true })
  t.match(await readFile(join(up.home, 'host', 'audit.jsonl'), 'utf8'), /"path":"\/\.herds\/control\/ports\/create"/)
  await rmdir(join(boxPorts, String(ports.echo)))
  t.equal(await errnoOf(writeFile(control, JSON.stringify({ node: 'studio', port: 'eighty' }))), 'EINVAL')
  // A run token cannot write control at all, so cannot make a public port.
  const runHerds = await Herds.connect({ url: up.url, token: run })
  t.teardown(() => runHerds.close())
  await t.rejects(runHerds.files.write('/.herds/control/ports/create', JSON.stringify({ node: 'studio', port: 9, public: true })), { code: 'EACCES' })
  const { match } = await startServer(t, box, 'exec python3 -u -m http.server 0 --bind 127.0.0.1', /port (\d+)/)
  await writeFile(control, JSON.stringify({ node: 'studio', sandbox: 'web', port: Number(match[1]), public: true }))
  const open = await fetchRaw(`${httpBase}/nodes/studio/sandboxes/web/ports/${match[1]}/`)
  t.equal(open.status, 200, 'served without a token')
})

t.test('a sandbox without network cannot be exposed, and says why', async (t) => {
  const closed = await herds.node('studio').sandbox('closed', { network: false })
  const fenced = (await closed.status()).fence !== 'none'
  const dir = join(up.nodeDir, 'sandboxes', 'closed', 'ports', '8080')
  if (!fenced) return t.pass('no fence here: "network": false is not enforced')
  t.equal(await errnoOf(mkdir(dir)), 'EACCES')
  t.match(await readFile(join(up.mountpoint, '.herds/control/errors.log'), 'utf8'), /network": false: nothing can connect to its ports/)
})

t.test('a read token can look but not expose', async (t) => {
  const readHerds = await Herds.connect({ url: up.url, token: read })
  t.teardown(() => readHerds.close())
  await t.rejects(readHerds.files.mkdir(`/nodes/studio/ports/8081`), { code: 'EACCES' })
  await t.rejects(readHerds.files.read(`/nodes/studio/sandboxes/web/ports/tcp/${ports.http}/new`), { code: 'EACCES' }, 'nor connect')
  t.ok((await readHerds.files.list('/nodes/studio/sandboxes/web/ports')).includes(String(ports.http)))
})

t.test('the node going away: open connections close, new requests get 502 quickly', async (t) => {
  const parts = await startHostAndNode(t, 'far')
  const farHerds = await Herds.connect({ url: parts.url, token: parts.admin })
  t.teardown(() => farHerds.close())
  const farBox = await farHerds.node('far').sandbox('web')
  const farPorts = await startNodeServer(t, farBox)
  await farHerds.files.mkdir(`/nodes/far/sandboxes/web/ports/${farPorts.http}`)
  const farUrl = (await farHerds.files.read(`/nodes/far/sandboxes/web/ports/${farPorts.http}/url`)).toString().trim()
  const farAuth = { authorization: `Bearer ${parts.admin}` }
  t.equal((await fetchRaw(farUrl, { headers: farAuth })).status, 200)
  const socket = connect({ host: '127.0.0.1', port: Number(new URL(farUrl).port) })
  socket.on('error', () => {})
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.write(`GET ${new URL(farUrl).pathname}bytes/500000000 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${parts.admin}\r\n\r\n`)
  await new Promise((resolve) => socket.once('data', resolve))
  socket.pause()
  const started = Date.now()
  parts.node.signal('SIGKILL')
  await new Promise((resolve) => socket.once('close', resolve).resume())
  t.ok(Date.now() - started < 10_000, `the open download closed ${Date.now() - started} ms after the node was killed`)
  const after = Date.now()
  const res = await fetchRaw(farUrl, { headers: farAuth })
  t.equal(res.status, 502)
  t.ok(Date.now() - after < 5_000, `502 in ${Date.now() - after} ms: ${res.body.toString().trim()}`)
  await farHerds.files.write('/.herds/control/nodes/far/forget', '1')
  const listed = JSON.parse((await farHerds.files.read('/.herds/catalog/ports.json')).toString()) as Array<{ node: string }>
  t.notOk(listed.some((e) => e.node === 'far'), 'forgetting the node removed its exposures')
})

/** Opens a raw connection to the host and sends `head` (an HTTP request); gives the socket and all it has been answered. */
async function rawRequest (head: string): Promise<{ socket: Socket, answer: () => string, closed: Promise<void> }> {
  const socket = connect({ host: '127.0.0.1', port: Number(new URL(httpBase).port) })
  socket.on('error', () => {})
  let answer = ''
  socket.on('data', (d) => { answer += d.toString('latin1') })
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  socket.write(head)
  return { socket, answer: () => answer, closed }
}

/** Exposes the raw TCP echo (once) and opens an upgraded connection to it with the token `secret`. */
async function upgradeToEcho (secret: string): ReturnType<typeof rawRequest> {
  await mkdir(join(boxPorts, String(ports.echo))).catch((err: { code?: string }) => { if (err.code !== 'EEXIST') throw err })
  return await rawRequest(`GET /nodes/studio/sandboxes/web/ports/${ports.echo}/ HTTP/1.1\r\nhost: x\r\nupgrade: raw\r\nconnection: upgrade\r\nauthorization: Bearer ${secret}\r\n\r\n`)
}

/** Waits until `check` holds, or fails the wait after `ms`. */
async function eventually (check: () => boolean | Promise<boolean>, ms = 5_000): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline;) {
    if (await check()) return true
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return await check()
}

/** Logs in with a token's secret through the form and gives the cookie (name=value). */
async function loginCookie (secret: string): Promise<string> {
  const logged = await fetchRaw(`${httpBase}/.herds/login`, { method: 'POST', body: Buffer.from(new URLSearchParams({ token: secret, next: new URL(url).pathname }).toString()), headers: { 'content-type': 'application/x-www-form-urlencoded' } })
  return String(logged.headers['set-cookie']).split(';')[0]
}

t.test('attacks on the proxy\'s paths: bad escapes, second spellings, no hint to a stranger of what is exposed', async (t) => {
  const path = new URL(url).pathname
  for (const bad of ['/nodes/%/ports/1/', '/nodes/studio/sandboxes/%E0%A4%A/ports/1/', `/nodes/stu%64io/sandboxes/web/ports/${ports.http}/`, `/nodes/studio/sandboxes/web/ports/0${ports.http}/`, '/nodes/studio/ports/65536/']) {
    t.equal((await fetchRaw(`${httpBase}${bad}`)).status, 401, `${bad} without a token: 401, as for any ports path`)
    t.equal((await fetchRaw(`${httpBase}${bad}`, { headers: auth })).status, 404, `${bad} with a token: not exposed`)
  }
  t.equal((await fetchRaw(`${httpBase}/nodes/studio/ports/9/`)).status, 401, 'an unexposed port tells a stranger no more than an exposed one')
  t.equal((await fetchRaw(url, { headers: auth })).status, 200, 'the host lives on')
  const evil = await fetchRaw(`${httpBase}/.herds/login`, { method: 'POST', body: Buffer.from(new URLSearchParams({ token: run, next: `${path}\r\nx: y` }).toString()), headers: { 'content-type': 'application/x-www-form-urlencoded' } })
  t.equal(evil.status, 303)
  t.equal(evil.headers.location, '/.herds/login', 'a next with a line break goes back to the login page')
  t.notOk(evil.headers.x, 'and adds no header')
  t.equal((await fetchRaw(url, { headers: auth })).status, 200, 'the host lives on')
})

t.test('a revoked token: its logins end even if a token of its name is made again, and what it opened closes', async (t) => {
  const secret = await tokenOf('rotated', 'run')
  const cookie = await loginCookie(secret)
  t.equal((await fetchRaw(url, { headers: { cookie } })).status, 200)
  t.teardown(() => rmdir(join(boxPorts, String(ports.echo))).catch(() => {}))
  const open = await upgradeToEcho(secret)
  t.ok(await eventually(() => open.answer().startsWith('GET / HTTP/1.1')), 'an upgraded connection reaches the echo')
  open.socket.write('ping')
  t.ok(await eventually(() => open.answer().endsWith('ping')), 'bytes go both ways')
  await rmdir(join(up.mountpoint, '.herds/control/tokens/rotated'))
  await Promise.race([open.closed, new Promise((resolve) => setTimeout(resolve, 5_000))])
  t.ok(open.socket.destroyed, 'revoking the token closed the connection it had opened')
  t.equal((await fetchRaw(url, { headers: { cookie } })).status, 401, 'its login ended')
  await tokenOf('rotated', 'run')
  t.equal((await fetchRaw(url, { headers: { cookie } })).status, 401, 'a new token of the same name does not bring the old login back')
})

t.test('a token that expires closes what it opened', async (t) => {
  const secret = await tokenOf('brief', 'run', new Date(Date.now() + 1_500).toISOString())
  t.teardown(() => rmdir(join(boxPorts, String(ports.echo))).catch(() => {}))
  const open = await upgradeToEcho(secret)
  t.ok(await eventually(() => open.answer().startsWith('GET / HTTP/1.1')), 'open while the token is good')
  await Promise.race([open.closed, new Promise((resolve) => setTimeout(resolve, 6_000))])
  t.ok(open.socket.destroyed, 'closed when it expired')
})

t.test('clients that leave at once leave no connection open on the node', async (t) => {
  const status = join(boxPorts, String(ports.http), 'status.json')
  // What earlier tests closed may still be closing: start from none open.
  t.ok(await eventually(async () => JSON.parse(await readFile(status, 'utf8')).open === 0), 'nothing open to begin with')
  const before = 0
  const leaving = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const one = await rawRequest(`GET ${new URL(url).pathname}hang HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${run}\r\n\r\n`)
    await new Promise((resolve) => setTimeout(resolve, i % 4))
    one.socket.destroy()
    return one
  }))
  t.equal(leaving.length, 20)
  t.ok(await eventually(async () => JSON.parse(await readFile(status, 'utf8')).open === before), 'every tunnel they asked for is closed again')
  // The host's count drops when it closes a tunnel; the node hears of it a round trip later.
  const onNode = async (): Promise<string[]> => (await readdir(join(boxPorts, 'tcp', String(ports.http)))).filter((n) => n !== 'new')
  await eventually(async () => (await onNode()).length === 0)
  t.same(await onNode(), [], 'and none is left on the node')
})

t.test('another site may not use the login: no cross-site login, no cookie WebSocket from another origin, no server setting the cookie', async (t) => {
  const cookie = await loginCookie(run)
  const host = new URL(httpBase).host
  const crossLogin = await fetchRaw(`${httpBase}/.herds/login`, { method: 'POST', body: Buffer.from(new URLSearchParams({ token: run, next: new URL(url).pathname }).toString()), headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.example' } })
  t.equal(crossLogin.status, 403, 'a login posted from another site is refused')
  t.notOk(crossLogin.headers['set-cookie'])
  const ws = (origin: string): Promise<string> => new Promise((resolve) => {
    const socket = new WebSocket(url.replace(/^http/, 'ws'), { headers: { cookie }, origin })
    socket.once('open', () => { socket.terminate(); resolve('open') })
    socket.once('unexpected-response', (_req, res) => resolve(String(res.statusCode)))
    socket.once('error', (err) => resolve(err.message))
  })
  t.equal(await ws('http://evil.example'), '403', 'a WebSocket from another origin with the cookie is refused')
  t.equal(await ws('http://127.0.0.1:1'), '403', 'so is one from another port of the same machine')
  t.equal(await ws(`http://${host}`), 'open', 'from the host\'s own origin it opens')
  const post = await fetchRaw(url, { method: 'POST', body: Buffer.from('x=1'), headers: { cookie, origin: 'http://evil.example' } })
  t.equal(post.status, 403, 'a cross-site POST with the cookie is refused')
  t.equal((await fetchRaw(url, { method: 'POST', body: Buffer.from('x=1'), headers: { authorization: `Bearer ${run}`, origin: 'http://evil.example' } })).status, 200, 'with the token in a header, origin does not matter')
  const set = await fetchRaw(`${url}set-cookie`, { headers: auth })
  t.same(set.headers['set-cookie'], ['app=2'], 'the server\'s own cookie passes; one named as the host\'s login does not, spaced or not')
  t.notOk(set.headers['clear-site-data'], 'nor may the server clear the browser\'s cookies')
  const handshake = await new Promise<string[]>((resolve, reject) => {
    const socket = new WebSocket(url.replace(/^http/, 'ws'), { headers: auth })
    socket.once('upgrade', (res) => { resolve(([] as string[]).concat(res.headers['set-cookie'] ?? [])); socket.terminate() })
    socket.once('error', reject)
  })
  t.same(handshake.map((c) => c.split(';')[0]), ['app=ws'], 'a WebSocket\'s handshake sets no login either')
  t.equal(await ws(`https://${host}`), '403', 'the same host name by another scheme is another origin')
  const asProxied = await new Promise<string>((resolve) => {
    const socket = new WebSocket(url.replace(/^http/, 'ws'), { headers: { cookie, 'x-forwarded-host': 'herds.example', 'x-forwarded-proto': 'https' }, origin: 'https://herds.example' })
    socket.once('open', () => { socket.terminate(); resolve('open') })
    socket.once('unexpected-response', (_req, res) => resolve(String(res.statusCode)))
  })
  t.equal(asProxied, 'open', 'behind a proxy, the origin it says it serves is the host\'s own')
  const nullOrigin = (site?: string): Promise<number> => fetchRaw(url, { method: 'POST', body: Buffer.from('x=1'), headers: { cookie, origin: 'null', ...(site ? { 'sec-fetch-site': site } : {}) } }).then((r) => r.status)
  t.equal(await nullOrigin('same-origin'), 200, 'Origin: null from the host\'s own page (no referrer sent) is let through')
  t.equal(await nullOrigin('cross-site'), 403, 'from another site it is not')
  t.equal(await nullOrigin(), 403, 'nor when the browser does not say')
})

t.test('a pipeline of requests on one connection holds one tunnel at a time, and leaves none when the client goes', async (t) => {
  const status = join(boxPorts, String(ports.http), 'status.json')
  const openNow = async (): Promise<number> => JSON.parse(await readFile(status, 'utf8')).open as number
  t.ok(await eventually(async () => await openNow() === 0), 'nothing open to begin with')
  const path = new URL(url).pathname
  const three = await rawRequest(['a', 'b', 'c'].map((p) => `GET ${path}${p} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${run}\r\n\r\n`).join(''))
  t.ok(await eventually(() => (three.answer().match(/HTTP\/1\.1 200/g) ?? []).length === 3), 'three pipelined requests, three answers')
  t.match(three.answer(), /"url":"\/a"[\s\S]*"url":"\/b"[\s\S]*"url":"\/c"/, 'in the order asked')
  three.socket.destroy()
  const hung = await rawRequest(Array.from({ length: 50 }, () => `GET ${path}hang HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${run}\r\n\r\n`).join(''))
  t.ok(await eventually(async () => await openNow() === 1), 'the first of 50 pipelined requests to a server that never answers holds a tunnel')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(await openNow(), 1, 'and the 49 behind it hold none')
  hung.socket.destroy()
  t.ok(await eventually(async () => await openNow() === 0), 'none once the client has gone')
})

t.test('sessions are bounded per token, and dot segments name no exposed port', async (t) => {
  const someoneElse = await loginCookie(await tokenOf('someone', 'run'))
  const first = await loginCookie(run)
  const ws = new WebSocket(url.replace(/^http/, 'ws'), { headers: { cookie: first }, origin: `http://${new URL(httpBase).host}` })
  t.teardown(() => ws.terminate())
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
  const wsClosed = new Promise((resolve) => ws.once('close', resolve))
  for (let i = 0; i < 100; i++) await loginCookie(run)
  t.equal((await fetchRaw(url, { headers: { cookie: first } })).status, 401, 'past 100 logins of one token, its oldest ends')
  t.equal((await fetchRaw(url, { headers: { cookie: someoneElse } })).status, 200, 'not anyone else\'s')
  await Promise.race([wsClosed, new Promise((resolve) => setTimeout(resolve, 5_000))])
  t.equal(ws.readyState, WebSocket.CLOSED, 'and the WebSocket opened with the ended login is closed')
  const path = new URL(url).pathname
  for (const dots of ['../', '%2e%2e/', './', '%2E/']) {
    // Sent as written: a URL parser would take the dots out before they left.
    const sent = await rawRequest(`GET ${path}${dots}x HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${run}\r\nconnection: close\r\n\r\n`)
    await sent.closed
    t.match(sent.answer(), /^HTTP\/1\.1 404/, `${dots} in the path: 404`)
  }
  const exposedBare = (await fetchRaw(`${httpBase}${path.replace(/\/$/, '')}`)).body.toString()
  const unexposedBare = (await fetchRaw(`${httpBase}/nodes/studio/ports/9`)).body.toString()
  t.equal(exposedBare.replaceAll(path.replace(/\/$/, ''), 'P'), unexposedBare.replaceAll('/nodes/studio/ports/9', 'P'), 'a stranger is told the same of an exposed port as of one that is not')
})

t.test('a login that never finishes stays on the leash of connections without a token', async (t) => {
  const stalled = await Promise.all(Array.from({ length: 40 }, async () => await rawRequest(`POST /.herds/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 10000\r\n\r\nt`)))
  t.teardown(() => { for (const s of stalled) s.socket.destroy() })
  t.ok(await eventually(() => stalled.filter((s) => s.socket.destroyed).length >= 8, 3_000), `past 32 from one address the oldest are closed (${stalled.filter((s) => s.socket.destroyed).length} of 40)`)
})

t.test('a sandbox removed takes its exposures with it: a new one of its name starts with none', async (t) => {
  const studio = herds.node('studio')
  for (const how of ['rmdir', 'control'] as const) {
    await studio.sandbox('brief')
    const dir = join(up.nodeDir, 'sandboxes', 'brief', 'ports', '8090')
    await mkdir(dir)
    t.ok((await readdir(join(up.nodeDir, 'sandboxes', 'brief', 'ports'))).includes('8090'), `exposed (${how})`)
    if (how === 'rmdir') await rmdir(join(up.nodeDir, 'sandboxes', 'brief'))
    else await writeFile(join(up.mountpoint, '.herds/control/sandboxes/remove'), JSON.stringify({ node: 'studio', name: 'brief' }))
    await studio.sandbox('brief')
    t.notOk((await readdir(join(up.nodeDir, 'sandboxes', 'brief', 'ports'))).includes('8090'), `the new sandbox has no exposure (${how})`)
    const listed = JSON.parse(await readFile(join(up.mountpoint, '.herds/catalog/ports.json'), 'utf8')) as Array<{ sandbox: string | null }>
    t.notOk(listed.some((e) => e.sandbox === 'brief'), 'nor does the catalog list one')
    await rmdir(join(up.nodeDir, 'sandboxes', 'brief'))
  }
})
