// A peer that sends garbage is answered or cut off alone; the host serves everyone else.
import { once } from 'node:events'
import { join } from 'node:path'
import { Packr } from 'msgpackr'
import t from 'tap'
import WebSocket from 'ws'
import { startHost } from '../../host/server.js'
import { connectHost } from '../../mount/client.js'
import { startNode } from '../../nodes/node.js'
import { readWhole } from '../../tree/bind.js'
import { decodeFrame, encodeFrame, PROTOCOL_VERSION, type Frame } from '../../tree/wire.js'
import { MAX_WAITING_LOCKS } from '../../tree/handles.js'
import type { HerdsError } from '../../tree/errno.js'
import { tempDir } from '../e2e/harness.js'

const host = await startHost({ port: 0, home: join(tempDir(t), 'host') })
t.teardown(() => host.stop())
const node = await startNode({ host: host.url, token: host.adminToken, name: 'studio', home: join(tempDir(t), 'node') })
t.teardown(() => node.stop())
const mount = await connectHost(host.url, { token: host.adminToken })
t.teardown(() => mount.close())

/** The host still serves a well-behaved mount. */
async function hostServes (): Promise<boolean> {
  const info = JSON.parse((await readWhole(mount.tree, '/nodes/studio/info.json')).toString())
  return info.name === 'studio'
}

/** Opens a raw connection and collects the frames and the close code it gets. */
async function raw (): Promise<{ socket: WebSocket, frames: Frame[], closed: Promise<number> }> {
  const socket = new WebSocket(host.url, { headers: { authorization: `Bearer ${host.adminToken}` } })
  const frames: Frame[] = []
  socket.on('message', (data) => { try { frames.push(decodeFrame(data as Buffer)) } catch { /* not ours to judge */ } })
  const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)))
  await once(socket, 'open')
  return { socket, frames, closed }
}

const garbage: Array<[string, Buffer | string]> = [
  ['random bytes', Buffer.from([0xc1, 0xff, 0x00, 0x13, 0x37])],
  ['a text frame', '{"t":"hello"}'],
  ['msgpack that is no frame', new Packr({ useRecords: false }).pack({ hello: 'world' })],
  ['a hello with a bad node name', new Packr({ useRecords: false }).pack({ t: 'hello', role: 'node', protocol: 1, name: '../x', info: {} })],
  ['a request before hello', encodeFrame({ t: 'req', id: 1, op: 'getattr', args: ['/'] })],
]

for (const [what, data] of garbage) {
  t.test(`${what}: refused, the host stays up`, async (t) => {
    const { socket, frames, closed } = await raw()
    socket.send(data)
    const code = await closed
    t.ok(code === 1002 || code === 4000, `closed with ${code}`)
    const bye = frames.find((f) => f.t === 'bye')
    t.ok(bye && bye.t === 'bye' && /EPROTO/.test(bye.error.code), `told why: ${JSON.stringify(bye)}`)
    t.ok(await hostServes())
  })
}

t.test('a well-framed request with bad arguments gets an error reply and the connection lives', async (t) => {
  const { socket, frames } = await raw()
  t.teardown(() => socket.close())
  socket.send(encodeFrame({ t: 'hello', role: 'mount', protocol: PROTOCOL_VERSION }))
  socket.send(encodeFrame({ t: 'req', id: 7, op: 'read', args: ['/README.md', -1, 'x', 10] }))
  socket.send(encodeFrame({ t: 'req', id: 8, op: 'readdir', args: ['/nodes'] }))
  while (frames.filter((f) => f.t === 'res').length < 2) await once(socket, 'message')
  const bad = frames.find((f) => f.t === 'res' && f.id === 7)
  const good = frames.find((f) => f.t === 'res' && f.id === 8)
  t.match(bad, { ok: false, error: { code: 'EINVAL' } })
  t.match(good, { ok: true, value: ['studio'] })
  t.ok(await hostServes())
})

t.test('attacker: another connection\'s handles cannot be fsynced, locked, unlocked or tested', async (t) => {
  await mount.tree.mkdir('/nodes/studio/volumes/locked', 0o755).catch(() => {})
  const path = '/nodes/studio/volumes/locked/db'
  const fhs = await Promise.all(Array.from({ length: 4 }, async () => (await mount.tree.create(path, 0o644)).fh))
  t.teardown(() => Promise.all(fhs.map((fh) => mount.tree.release(path, fh))))
  await mount.tree.setlk(path, fhs[0], 'victim.1.1', 'write', 0, 0, false)
  const { socket, frames } = await raw()
  t.teardown(() => socket.close())
  socket.send(encodeFrame({ t: 'hello', role: 'mount', protocol: PROTOCOL_VERSION }))
  // The host numbers handles from 1: every small number is tried, as an attacker would.
  const tries: Array<[string, (fh: number) => unknown[]]> = [
    ['fsync', (fh) => [path, fh, false]],
    ['setlk', (fh) => [path, fh, 'victim.1.1', 'unlock', 0, 0, false]],
    ['setlk', (fh) => [path, fh, 'thief.1.1', 'read', 0, 0, false]],
    ['getlk', (fh) => [path, fh, 'thief.1.1', 'write', 0, 0]],
    ['flock', (fh) => [path, fh, 'exclusive', false]],
  ]
  let id = 100
  for (const [op, args] of tries) for (let fh = 1; fh <= 16; fh++) socket.send(encodeFrame({ t: 'req', id: id++, op, args: args(fh) } as Frame))
  while (frames.filter((f) => f.t === 'res').length < id - 100) await once(socket, 'message')
  const codes = new Set(frames.filter((f) => f.t === 'res').map((f) => f.t === 'res' && !f.ok ? f.error.code : 'ok'))
  t.same([...codes], ['EBADF'], 'every one refused: no such handle on this connection')
  t.same(await mount.tree.getlk(path, fhs[1], 'other.1.1', 'read', 0, 0), { type: 'write', start: 0, length: 0, pid: 0 }, 'the victim\'s lock is still held')
})

t.test(`attacker: one connection waits for at most ${MAX_WAITING_LOCKS} locks at once; its own owners only`, async (t) => {
  const path = '/nodes/studio/volumes/locked/waits'
  const holder = await connectHost(host.url, { token: host.adminToken })
  t.teardown(() => holder.close())
  await holder.tree.mkdir('/nodes/studio/volumes/locked', 0o755).catch(() => {})
  const { fh: held } = await holder.tree.create(path, 0o644)
  await holder.tree.setlk(path, held, 'holder.1.1', 'write', 0, 0, false)
  const waiter = await connectHost(host.url, { token: host.adminToken })
  const fh = await waiter.tree.open(path, 2)
  const waits = Array.from({ length: MAX_WAITING_LOCKS }, (_, i) => waiter.tree.setlk(path, fh, `w.${i}`, 'write', 0, 0, true).then(() => 'got', (err: HerdsError) => err.code))
  await new Promise((resolve) => setTimeout(resolve, 200))
  await t.rejects(waiter.tree.setlk(path, fh, 'w.more', 'read', 0, 0, true), { code: 'ENOLCK' }, 'one more waiter is refused')
  await t.rejects(waiter.tree.setlk(path, fh, 'holder.1.1', 'unlock', 0, 0, false).then(() => holder.tree.setlk(path, held, 'probe.1.1', 'write', 0, 0, false)), { code: 'EAGAIN' }, 'naming the holder\'s owner unlocks nothing of it')
  t.equal(await readWhole(mount.tree, '/nodes/studio/info.json').then(() => 'served'), 'served', 'the node still answers others')
  waiter.close()
  t.same([...new Set(await Promise.all(waits))].length, 1, 'the waiters end with their connection')
  await holder.tree.release(path, held)
})

t.test('a path that climbs out with .. is refused', async (t) => {
  await t.rejects(readWhole(mount.tree, '/nodes/studio/../../etc/passwd'), { code: 'EINVAL' })
  await t.rejects(mount.tree.getattr('/nodes/studio/exec/../../../etc'), { code: 'EINVAL' })
})
