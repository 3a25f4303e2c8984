// herds forward against real servers in a sandbox on a real node (host and node as processes of their own):
// HTTP, a 100 MB download, 100 requests at once, WebSocket, SSE, raw TCP byte for byte, a stalled reader
// beside a busy one, the node going away, and the refusals.
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import t from 'tap'
import WebSocket from 'ws'
import { Herds, type Sandbox } from '../../mount/sdk/index.js'
import { spawnHerds, startHostAndNode, tempDir, type HerdsProcess } from './harness.js'
import { curlSha256, echoThrough, fetchRaw, sha256Of, startNodeServer, startServer } from './ports.js'

const { url, admin, node } = await startHostAndNode(t, 'studio')
const herds = await Herds.connect({ url, token: admin })
t.teardown(() => herds.close())
const box: Sandbox = await herds.node('studio').sandbox('web')
const ports = await startNodeServer(t, box)

/** Starts herds forward ARGS and gives the local port it listens on. */
async function forward (args: string[]): Promise<{ proc: HerdsProcess, port: number }> {
  const proc = spawnHerds(t, ['forward', '--host', url, '--node', 'studio', ...args], tempDir(t), { HERDS_TOKEN: admin })
  const match = await proc.waitFor(/forwarding 127\.0\.0\.1:(\d+) to port/)
  return { proc, port: Number(match[1]) }
}

const web = await forward(['--sandbox', 'web', `0:${ports.http}`])
const base = `http://127.0.0.1:${web.port}`

t.test('HTTP through the forward: the request arrives as sent, the answer whole', async (t) => {
  const res = await fetchRaw(`${base}/hello?x=1`, { method: 'POST', body: Buffer.alloc(300_000, 1), headers: { 'x-test': 'yes' } })
  t.equal(res.status, 200)
  t.match(JSON.parse(res.body.toString()), { method: 'POST', url: '/hello?x=1', headers: { 'x-test': 'yes' }, body: 300_000 })
})

t.test('a 100 MB download from python3 -m http.server, by curl, arrives with the right checksum', async (t) => {
  const made = await box.run('head -c 100000000 /dev/urandom > big.bin && sha256sum big.bin')
  const want = made.stdout.split(' ')[0]
  const { match } = await startServer(t, box, 'exec python3 -u -m http.server 0 --bind 127.0.0.1', /port (\d+)/)
  const py = await forward(['--sandbox', 'web', `0:${match[1]}`])
  const got = await curlSha256(`http://127.0.0.1:${py.port}/big.bin`)
  t.same(got, { status: 200, sha: want, bytes: 100_000_000 })
})

t.test('100 requests at once all succeed', async (t) => {
  const all = await Promise.all(Array.from({ length: 100 }, (_, i) => fetchRaw(`${base}/r${i}`)))
  t.same(all.map((r) => r.status), Array(100).fill(200))
  t.same(all.map((r) => JSON.parse(r.body.toString()).url), Array.from({ length: 100 }, (_, i) => `/r${i}`))
})

t.test('a WebSocket echo and an SSE stream work through the forward', async (t) => {
  const ws = new WebSocket(`ws://127.0.0.1:${web.port}/`)
  t.teardown(() => ws.terminate())
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
  const big = randomBytes(1024 * 1024)
  const echoed = await new Promise<Buffer>((resolve) => { ws.once('message', (m: Buffer) => resolve(m)); ws.send(big) })
  t.ok(echoed.equals(big), 'a 1 MiB binary message came back the same')
  const text = await new Promise<string>((resolve) => { ws.once('message', (m: Buffer) => resolve(m.toString())); ws.send('hello') })
  t.equal(text, 'hello')
  const events: string[] = []
  await new Promise<void>((resolve, reject) => {
    const req = connect({ host: '127.0.0.1', port: web.port }, () => req.write('GET /sse HTTP/1.1\r\nhost: x\r\n\r\n'))
    let seen = ''
    req.on('data', (d) => {
      seen += d.toString()
      const ticks = seen.match(/data: tick \d/g) ?? []
      // Each event arrives on its own, as it is sent, not all at the end.
      if (ticks.length > events.length) events.push(`${ticks.at(-1)} at ${Date.now()}`)
      if (ticks.length === 3) { req.destroy(); resolve() }
    }).on('error', reject)
  })
  t.equal(events.length, 3, 'three events, each as it came')
})

t.test('raw TCP is carried byte for byte, and a half-close reaches the server', async (t) => {
  const tcp = await forward(['--sandbox', 'web', `0:${ports.echo}`])
  const data = randomBytes(5 * 1024 * 1024 + 17)
  t.ok((await echoThrough(tcp.port, data)).equals(data), '5 MiB of random bytes came back exactly, after the end was sent')
  t.ok((await echoThrough(tcp.port, Buffer.alloc(0))).equals(Buffer.alloc(0)), 'an empty connection ends cleanly')
})

t.test('a reader that stalls does not slow another connection', async (t) => {
  // One connection asks for 200 MB and reads nothing: the node holds its bound, the server waits.
  const stalled = connect({ host: '127.0.0.1', port: web.port })
  t.teardown(() => stalled.destroy())
  await new Promise((resolve) => stalled.once('connect', resolve))
  stalled.write('GET /bytes/200000000 HTTP/1.1\r\nhost: x\r\n\r\n')
  stalled.pause()
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const started = Date.now()
  const busy = await sha256Of(`${base}/bytes/50000000`)
  const ms = Date.now() - started
  t.equal(busy.bytes, 50_000_000, `50 MB on another connection arrived whole in ${ms} ms while the first stalled`)
  t.ok(stalled.bytesRead < 40_000_000, `the stalled connection took only ${stalled.bytesRead} bytes: it is held back, not buffered without end`)
})

t.test('bad input is one line and exit 255; a sandbox without network is refused at once', async (t) => {
  for (const [args, said] of [
    [['forward', '--host', url, 'eighty'], /^herds: forward: LOCAL_PORT:PORT or PORT/],
    [['forward', '--host', url, '1:70000'], /ports go up to 65535/],
    [['forward', '--host', url, '--node', 'nowhere', '8080'], /^herds: .*nowhere/],
    // The node runs on this machine: 18080 to its own 18080 would come back to herds forward for ever.
    [['forward', '--host', url, '--node', 'studio', '18080'], /^herds: studio is this machine .*would loop; give another local port \(herds forward 18081:18080\)/],
  ] as Array<[string[], RegExp]>) {
    const proc = spawnHerds(t, args, tempDir(t), { HERDS_TOKEN: admin })
    t.equal(await proc.exited, 255, args.join(' '))
    t.match(proc.output(), said)
    t.equal(proc.output().trim().split('\n').length, 1, 'one line')
  }
  const closed = await herds.node('studio').sandbox('closed', { network: false })
  const status = await closed.status()
  const proc = spawnHerds(t, ['forward', '--host', url, '--node', 'studio', '--sandbox', 'closed', '8080'], tempDir(t), { HERDS_TOKEN: admin })
  if (status.fence === 'none') {
    await proc.waitFor(/forwarding/)
    t.pass('no fence here: "network": false is not enforced, and forwarding is allowed (docs/isolation.md)')
  } else {
    t.equal(await proc.exited, 255)
    t.match(proc.output(), /^herds: sandbox closed has "network": false: nothing can connect to its ports\n$/)
  }
})

t.test('nothing listening on the node\'s port: the connection is closed and the reason printed', async (t) => {
  const dead = await forward(['0:1'])
  const socket = connect({ host: '127.0.0.1', port: dead.port })
  await new Promise((resolve) => socket.on('close', resolve).on('error', () => {}))
  await dead.proc.waitFor(/a connection to studio:1 failed: nothing listens on port 1 on this node/)
  t.pass('closed, and said why')
})

t.test('the node going away closes what was forwarded at once', async (t) => {
  const socket = connect({ host: '127.0.0.1', port: web.port })
  socket.on('error', () => {})
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.write('GET /bytes/500000000 HTTP/1.1\r\nhost: x\r\n\r\n')
  await new Promise((resolve) => socket.once('data', resolve))
  socket.pause()
  const started = Date.now()
  node.signal('SIGKILL')
  await new Promise((resolve) => socket.once('close', resolve).resume())
  t.ok(Date.now() - started < 10_000, `closed ${Date.now() - started} ms after the node was killed`)
  await web.proc.waitFor(/failed/, 5_000).catch(() => {})
  const after = await fetchRaw(`${base}/`).then((r) => `HTTP ${r.status}`, (err: Error) => err.message)
  t.match(after, /socket hang up|ECONNRESET/, 'a new connection is closed, not left hanging')
})
