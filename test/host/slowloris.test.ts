// Slowloris (issue 10, point 7): hundreds of half-sent upgrade requests need no token. The host
// closes them after a few seconds, holds at most a few per address and a few hundred in all
// (closing the oldest first), and an authenticated mount still connects while the attack runs.
// Every connection goes to 127.0.0.1; the attackers come from other loopback addresses.
import { readdirSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import t from 'tap'
import WebSocket from 'ws'
import { MAX_PENDING, MAX_PENDING_PER_ADDRESS, UPGRADE_TIMEOUT_MS } from '../../host/upgrades.js'
import { connectHost } from '../../mount/client.js'
import { readWhole } from '../../tree/bind.js'
import { decodeFrame, encodeFrame, PROTOCOL_VERSION } from '../../tree/wire.js'
import { adminToken, spawnHerds, tempDir } from '../e2e/harness.js'

const home = tempDir(t)
const host = spawnHerds(t, ['host', '--port', '0'], home)
const url = (await host.waitFor(/host\s+(ws:\/\/\S+)/))[1]
const port = Number(new URL(url).port)
const token = adminToken(home)

/** The host's open descriptors, as the kernel counts them. */
const hostFds = (): number => readdirSync(`/proc/${host.child.pid!}/fd`).length

interface Attacker { socket: Socket, connectedAt: number, closedAt?: number }
const attackers = new Set<Attacker>()
t.teardown(() => { for (const a of attackers) a.socket.destroy() })

/** One connection from `from` that sends the start of an upgrade request and never the end. */
function halfOpen (from: string, trickle = false): Promise<Attacker> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress: from })
    const attacker: Attacker = { socket, connectedAt: Date.now() }
    attackers.add(attacker)
    socket.on('error', () => {})
    socket.on('close', () => { attacker.closedAt ??= Date.now(); resolve(attacker) })
    socket.on('connect', () => {
      attacker.connectedAt = Date.now()
      socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n')
      // A slower kind: one more header byte every half second, so the request is never idle.
      if (trickle) {
        const timer = setInterval(() => socket.write('X'), 500)
        socket.on('close', () => clearInterval(timer))
      }
      resolve(attacker)
    })
  })
}

/** Opens `count` half-sent upgrades from `from`, 50 at a time. */
async function attack (from: string, count: number): Promise<Attacker[]> {
  const all: Attacker[] = []
  for (let i = 0; i < count; i += 50) all.push(...await Promise.all(Array.from({ length: Math.min(50, count - i) }, () => halfOpen(from))))
  return all
}

const stillOpen = (group: Attacker[]): number => group.filter((a) => a.closedAt === undefined).length
const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** A WebSocket with the token from address `from`, up to the host's welcome. */
async function welcomedFrom (from: string): Promise<boolean> {
  const socket = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, localAddress: from })
  socket.on('error', () => {})
  try {
    await new Promise((resolve, reject) => { socket.on('open', resolve); socket.on('close', reject) })
    socket.send(encodeFrame({ t: 'hello', role: 'mount', protocol: PROTOCOL_VERSION }))
    const frame = await new Promise((resolve, reject) => { socket.on('message', (data) => resolve(decodeFrame(data as Buffer))); socket.on('close', reject) })
    return (frame as { t: string }).t === 'welcome'
  } catch {
    return false
  } finally {
    socket.terminate()
  }
}

/** A mount with the token connects and reads the README. */
async function mountServes (): Promise<boolean> {
  const mount = await connectHost(url, { token })
  try {
    return (await readWhole(mount.tree, '/README.md')).toString().startsWith('# Herds')
  } finally {
    mount.close()
  }
}

t.test('one address holds a few half-sent upgrades, each for a few seconds; a mount still gets in', async (t) => {
  const baseline = hostFds()
  const group = await attack('127.0.0.2', 300)
  const trickler = await halfOpen('127.0.0.3', true)
  await pause(300)
  const open = stillOpen(group)
  t.comment(`300 half-sent upgrades from 127.0.0.2: ${open} still open; host descriptors ${baseline} before, ${hostFds()} now`)
  t.ok(open <= MAX_PENDING_PER_ADDRESS, `at most ${MAX_PENDING_PER_ADDRESS} from one address are kept (${open} are)`)
  t.ok(hostFds() <= baseline + MAX_PENDING_PER_ADDRESS + 10, 'the host holds no more descriptors than that')

  // The attacker keeps re-opening what the host closes, while a mount and a client from its own address connect.
  let attacking = true
  const keep = (async () => { while (attacking) await halfOpen('127.0.0.2').then((a) => group.push(a)) })()
  t.ok(await mountServes(), 'a mount with a token connects and reads while the attack runs')
  t.ok(await welcomedFrom('127.0.0.2'), 'so does a client from the attacker\'s own address (the oldest half-sent upgrade gives way)')
  attacking = false
  await keep

  const deadline = Math.max(...group.map((a) => a.connectedAt), trickler.connectedAt) + UPGRADE_TIMEOUT_MS + 3000
  while ((stillOpen(group) > 0 || trickler.closedAt === undefined) && Date.now() < deadline) await pause(100)
  t.equal(stillOpen(group), 0, `every half-sent upgrade was closed by the host within ${UPGRADE_TIMEOUT_MS / 1000} s (and a little)`)
  t.ok(trickler.closedAt !== undefined, 'one that sends a byte every half second too')
  const longest = Math.max(...group.filter((a) => a.closedAt).map((a) => a.closedAt! - a.connectedAt), trickler.closedAt! - trickler.connectedAt)
  t.comment(`the longest-lived half-sent upgrade lasted ${longest} ms`)
  const after = hostFds()
  t.ok(after <= baseline + 2, `the host's descriptors are back to ${after} (${baseline} before)`)
})

t.test('many addresses together hold at most the overall cap; a mount still gets in', async (t) => {
  const baseline = hostFds()
  const addresses = Array.from({ length: 24 }, (_, i) => `127.0.0.${10 + i}`)
  const groups = await Promise.all(addresses.map((from) => attack(from, MAX_PENDING_PER_ADDRESS)))
  await pause(300)
  const open = groups.reduce((n, g) => n + stillOpen(g), 0)
  t.comment(`${24 * MAX_PENDING_PER_ADDRESS} half-sent upgrades from 24 addresses: ${open} still open; host descriptors ${baseline} before, ${hostFds()} now`)
  t.ok(open <= MAX_PENDING, `at most ${MAX_PENDING} are kept in all (${open} are)`)
  t.ok(hostFds() <= baseline + MAX_PENDING + 10, 'the host holds no more descriptors than that')
  t.ok(await mountServes(), 'a mount with a token connects and reads')
  for (const a of groups.flat()) a.socket.destroy()
})

t.test('a plain HTTP request is answered and its connection closed', async (t) => {
  const socket = connect({ host: '127.0.0.1', port })
  let answer = ''
  socket.on('data', (chunk) => { answer += chunk.toString() })
  await new Promise((resolve) => socket.on('connect', resolve))
  socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  await new Promise((resolve) => socket.on('close', resolve))
  t.match(answer, /^HTTP\/1.1 426 /)
})
