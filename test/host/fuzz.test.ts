// A fuzzer against a real host process (issue 5): over 10,000 random and malformed frames, on
// connections with a valid token and without one. The host must stay up, keep serving a valid
// client, and not grow without bound. The seed is printed, so a failure can be replayed.
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { Packr } from 'msgpackr'
import t from 'tap'
import WebSocket from 'ws'
import { connectHost } from '../../mount/client.js'
import { readWhole } from '../../tree/bind.js'
import { OPS, encodeFrame, PROTOCOL_VERSION } from '../../tree/wire.js'
import { adminToken, spawnHerds, tempDir } from '../e2e/harness.js'

const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000)
t.comment(`FUZZ_SEED=${seed}`)

/** A small seeded PRNG (mulberry32), so a run can be repeated exactly. */
let state = seed
function random (): number {
  state = (state + 0x6d2b79f5) | 0
  let x = Math.imul(state ^ (state >>> 15), 1 | state)
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296
}
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]
const int = (max: number): number => Math.floor(random() * max)
const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)))

const strings = ['', '/', '..', '/../etc/passwd', '/nodes', '/.herds/control/tokens/create', '/.herds/catalog/jobs.json', 'a\u0000b', '\u202e', 'x'.repeat(5000), '/README.md', '/.herds/control/tokens']
/** Any msgpack value, nested a little. */
function value (depth = 0): unknown {
  switch (int(depth > 2 ? 6 : 9)) {
    case 0: return pick(strings)
    case 1: return int(2 ** 31) - 2 ** 30
    case 2: return pick([NaN, Infinity, -1, 0, 2 ** 53, 1.5, -0])
    case 3: return null
    case 4: return random() < 0.5
    case 5: return bytes(int(64))
    case 6: return Array.from({ length: int(5) }, () => value(depth + 1))
    case 7: return Object.fromEntries(Array.from({ length: int(4) }, () => [pick(['t', 'id', 'op', 'args', 'role', 'x']), value(depth + 1)]))
    default: return pick(strings) + String(int(1000))
  }
}

const packr = new Packr({ useRecords: false })
/** A frame that is wrong in some way: garbage, a wrong shape, or a request with wild arguments. */
function badFrame (): Buffer | string {
  switch (int(8)) {
    case 0: return bytes(1 + int(200))
    case 1: return JSON.stringify(value())
    case 2: return packr.pack(value())
    case 3: return packr.pack({ t: pick(['req', 'res', 'hello', 'cancel', 'jobs', 'bye', 'welcome', 'zz']), id: value(), op: value(), args: value() })
    case 4: return packr.pack({ t: 'res', id: int(100), ok: random() < 0.5, value: value(), error: value() })
    case 5: return packr.pack({ t: 'cancel', id: int(1000) })
    default: return packr.pack({ t: 'req', id: int(2 ** 31), op: random() < 0.9 ? pick(OPS) : String(value()), args: Array.from({ length: int(6) }, () => value()) })
  }
}

/** Reads the host's resident memory, in MiB. */
function rssMiB (pid: number): number {
  const kb = Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)![1])
  return kb / 1024
}

const home = tempDir(t)
const host = spawnHerds(t, ['host', '--port', '0'], home)
const url = (await host.waitFor(/host\s+(ws:\/\/\S+)/))[1]
const port = Number(new URL(url).port)
const token = adminToken(home)
const valid = await connectHost(url, { token })
t.teardown(() => valid.close())
const serves = async (): Promise<boolean> => (await readWhole(valid.tree, '/README.md')).toString().startsWith('# Herds')

let sent = 0

/** One authenticated connection: a hello (or not), then `count` bad frames; resolves when it closes or has sent them. */
async function authedSession (count: number, hello: boolean): Promise<void> {
  const socket = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } })
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  const opened = await Promise.race([new Promise((resolve) => socket.on('open', () => resolve(true))), closed.then(() => false)])
  if (!opened) return
  if (hello) socket.send(encodeFrame({ t: 'hello', role: 'mount', protocol: PROTOCOL_VERSION }))
  for (let i = 0; i < count && socket.readyState === WebSocket.OPEN; i++) {
    socket.send(badFrame())
    sent++
    if (i % 50 === 49) await new Promise((resolve) => setImmediate(resolve))
  }
  socket.close()
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 2000))])
  socket.terminate()
}

/** One connection without a valid token: a WebSocket that is refused, or raw bytes at the port. */
async function unauthenticated (): Promise<void> {
  if (random() < 0.5) {
    const headers: Record<string, string> = random() < 0.5 ? {} : { authorization: pick(['Bearer ', 'Bearer herds_nope', 'Basic abc', `Bearer ${token}x`, 'Bearer ' + 'h'.repeat(9000)]) }
    const socket = new WebSocket(url, { headers })
    socket.on('error', () => {})
    socket.on('open', () => { socket.send(badFrame()); socket.terminate() })
    await new Promise((resolve) => { socket.on('close', resolve); socket.on('unexpected-response', (_req, res) => { res.resume(); socket.terminate() }) })
  } else {
    const raw = connect(port, '127.0.0.1')
    raw.on('error', () => {})
    await new Promise((resolve) => raw.on('connect', resolve))
    raw.write(random() < 0.5 ? bytes(1 + int(500)) : `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${bytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n${bytes(int(100)).toString('latin1')}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
    raw.destroy()
  }
  sent++
}

/** One round: long sessions of well-framed nonsense, short ones of garbage, and strangers. */
async function round (): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.all(Array.from({ length: 4 }, () => authedSession(100, true)))
  for (let i = 0; i < 100; i++) await Promise.all(Array.from({ length: 5 }, () => authedSession(1 + int(3), random() < 0.7)))
  for (let i = 0; i < 100; i++) await Promise.all(Array.from({ length: 5 }, () => unauthenticated()))
}

t.test('over 10,000 bad frames: the host stays up, serves a valid client, and memory levels off', async (t) => {
  await round()
  t.ok(await serves(), 'serving after the first round')
  const afterFirst = rssMiB(host.child.pid!)
  await round()
  await round()
  const afterThird = rssMiB(host.child.pid!)
  t.ok(sent >= 10_000, `${sent} bad frames and connections sent`)
  t.ok(await serves().catch((err) => { t.comment(host.output()); throw err }), 'a valid client is still served')
  t.equal(host.child.exitCode, null, 'the host is still running')
  t.comment(`host RSS: ${afterFirst.toFixed(0)} MiB after round 1, ${afterThird.toFixed(0)} MiB after round 3`)
  t.ok(afterThird - afterFirst < 64, `two more rounds grew the host by ${(afterThird - afterFirst).toFixed(0)} MiB (under 64)`)
  const health = JSON.parse((await readWhole(valid.tree, '/.herds/catalog/health.json')).toString())
  t.equal(health.mounts, 1, 'every fuzzing session was let go; only the valid client is left')
})
