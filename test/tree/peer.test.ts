// The wire between two real peers on a WebSocket on port 0.
import { once } from 'node:events'
import t, { type Test } from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { HerdsError } from '../../tree/errno.js'
import { MAX_REQUEST_BYTES, Peer, remoteTree } from '../../tree/peer.js'
import { SEND_HIGH_WATER } from '../../tree/outbox.js'
import { makeStat, S_IFREG, type CallContext, type Tree } from '../../tree/tree.js'

/** A tree whose reads of "/slow" wait to be released, and which notes cancellations. */
function slowTree () {
  const state = { cancelled: 0, release: () => {} }
  const gate = new Promise<void>((resolve) => { state.release = resolve })
  const tree = {
    getattr: async () => makeStat(S_IFREG | 0o444, 1),
    read: async (path: string, _fh: number, offset: number, _len: number, ctx?: CallContext) => {
      if (path === '/slow') {
        await new Promise<void>((resolve, reject) => {
          void gate.then(resolve)
          ctx?.signal?.addEventListener('abort', () => { state.cancelled++; reject(new HerdsError('ECANCELED', 'cancelled')) })
        })
        return Buffer.from('slow')
      }
      return Buffer.from(`fast@${offset}`)
    },
  } as unknown as Tree
  return { tree, state }
}

async function pair (t: Test, tree: Tree): Promise<Tree> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await once(wss, 'listening')
  wss.on('connection', (socket) => new Peer(socket).serve(tree))
  const socket = new WebSocket(`ws://127.0.0.1:${(wss.address() as { port: number }).port}`)
  await once(socket, 'open')
  t.teardown(() => { socket.terminate(); wss.close() })
  return remoteTree(new Peer(socket))
}

t.test('requests are answered out of order', async (t) => {
  const { tree, state } = slowTree()
  const remote = await pair(t, tree)
  const order: string[] = []
  const slow = remote.read('/slow', 1, 0, 10).then((b) => order.push(Buffer.from(b).toString()))
  const fast = remote.read('/fast', 1, 7, 10).then((b) => order.push(Buffer.from(b).toString()))
  await fast
  state.release()
  await slow
  t.same(order, ['fast@7', 'slow'])
})

t.test('a cancelled request stops the work on the other side', async (t) => {
  const { tree, state } = slowTree()
  const remote = await pair(t, tree)
  const controller = new AbortController()
  const pending = remote.read('/slow', 1, 0, 10, { signal: controller.signal })
  setTimeout(() => controller.abort(), 50)
  await t.rejects(pending, { code: 'ECANCELED' })
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(state.cancelled, 1, 'the server saw the cancellation')
  t.equal(Buffer.from(await remote.read('/fast', 1, 0, 10)).toString(), 'fast@0', 'the connection still works')
})

t.test('file bytes cross as binary, unchanged', async (t) => {
  const bytes = Buffer.from([0, 255, 1, 254, 10, 13])
  const tree = { write: async (_p: string, _fh: number, _o: number, data: Uint8Array) => Buffer.compare(Buffer.from(data), bytes) === 0 ? data.length : 0 } as unknown as Tree
  const remote = await pair(t, tree)
  t.equal(await remote.write('/f', 1, 0, bytes), bytes.length)
})

t.test('a closed connection fails pending calls at once with EHOSTDOWN', async (t) => {
  const { tree } = slowTree()
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await once(wss, 'listening')
  wss.on('connection', (socket) => {
    new Peer(socket).serve(tree)
    setTimeout(() => socket.terminate(), 50)
  })
  const socket = new WebSocket(`ws://127.0.0.1:${(wss.address() as { port: number }).port}`)
  t.teardown(() => { socket.terminate(); wss.close() })
  await once(socket, 'open')
  const remote = remoteTree(new Peer(socket))
  await t.rejects(remote.read('/slow', 1, 0, 10), { code: 'EHOSTDOWN' })
  await t.rejects(remote.getattr('/'), { code: 'EHOSTDOWN' })
})

/** Two peers on a real WebSocket: the server serves `tree`; both ends are returned. */
async function peers (t: Test, tree?: Tree): Promise<{ client: Peer, server: Peer }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await once(wss, 'listening')
  const served = new Promise<Peer>((resolve) => wss.on('connection', (socket) => {
    const peer = new Peer(socket)
    if (tree) peer.serve(tree)
    resolve(peer)
  }))
  const socket = new WebSocket(`ws://127.0.0.1:${(wss.address() as { port: number }).port}`)
  await once(socket, 'open')
  t.teardown(() => { socket.terminate(); wss.close() })
  return { client: new Peer(socket), server: await served }
}

const MiB = 1024 * 1024

t.test('releases past the other side\'s cap of requests in flight are tried again, none dropped', async (t) => {
  // A release that takes its time, as a node closing thousands of files does.
  let released = 0
  const tree = { release: async () => { await new Promise((resolve) => setTimeout(resolve, 300)); released++ } } as unknown as Tree
  const { client } = await peers(t, tree)
  const results = await Promise.allSettled(Array.from({ length: 6000 }, (_, i) => client.call('release', ['/f', i + 1])))
  const refused = results.filter((r) => r.status === 'rejected')
  t.equal(refused.length, 0, `no release failed (${refused.length} did)`)
  t.equal(released, 6000, 'the other side released every one')
})

t.test('a peer whose requests hold more than the cap of bytes is not read until some are answered', async (t) => {
  const gate: { open: () => void } = { open: () => {} }
  const opened = new Promise<void>((resolve) => { gate.open = resolve })
  let started = 0
  const tree = { write: async (_p: string, _fh: number, _o: number, data: Uint8Array) => { started++; await opened; return data.length } } as unknown as Tree
  const { client, server } = await peers(t, tree)
  const writes = Array.from({ length: 40 }, () => client.call('write', ['/f', 1, 0, Buffer.alloc(MiB)]))
  const deadline = Date.now() + 10_000
  while (started < MAX_REQUEST_BYTES / MiB && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.ok(server.held, 'the server stopped reading')
  t.ok(started <= MAX_REQUEST_BYTES / MiB + 2, `${started} writes of 1 MiB taken in at once (cap ${MAX_REQUEST_BYTES / MiB} MiB)`)
  gate.open()
  t.same(await Promise.all(writes), Array(40).fill(MiB), 'every write is answered once the first are')
  t.equal(started, 40)
  t.notOk(server.held, 'and the server reads again')
})

t.test('a caller keeps its own send buffer small while the other side does not read', async (t) => {
  const tree = { write: async (_p: string, _fh: number, _o: number, data: Uint8Array) => data.length } as unknown as Tree
  const { client, server } = await peers(t, tree)
  const release = server.hold()
  const writes = Array.from({ length: 40 }, () => client.call('write', ['/f', 1, 0, Buffer.alloc(MiB)]))
  await new Promise((resolve) => setTimeout(resolve, 300))
  const buffered = client.socket.bufferedAmount
  t.ok(buffered <= SEND_HIGH_WATER + 2 * MiB, `${(buffered / MiB).toFixed(1)} MiB in the socket's buffer (high water ${SEND_HIGH_WATER / MiB} MiB)`)
  t.ok(client.lastHeard <= Date.now(), 'a sign of life is a time')
  t.ok(server.lastHeard >= Date.now() - 10, 'a held peer counts as heard from')
  release()
  t.same(await Promise.all(writes), Array(40).fill(MiB), 'all of them go once it reads again')
})

t.test('change notices to a reader that is behind are gathered and folded, not queued', async (t) => {
  const { client, server } = await peers(t)
  const heard: string[][] = []
  client.on('frame', (frame: { t: string, paths?: string[] }) => { if (frame.t === 'changed') heard.push(frame.paths!) })
  // The client stops reading; the server sends 100 notices of 1,000 long paths each (about 100 MiB).
  const release = client.hold()
  const long = 'x'.repeat(200)
  for (let i = 0; i < 100; i++) {
    server.send({ t: 'changed', paths: Array.from({ length: 1000 }, (_, j) => `/volumes/v${i}/${long}/${long}/${long}/${long}/${long}${j}`) })
  }
  t.ok(server.socket.bufferedAmount < SEND_HIGH_WATER + 2 * MiB, `${(server.socket.bufferedAmount / MiB).toFixed(1)} MiB buffered for 100 notices of 1,000 paths (1 MiB each)`)
  release()
  const deadline = Date.now() + 20_000
  const folded = `/volumes/v99/${long}/${long}/${long}/${long}`
  while (!heard.flat().includes(folded) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  const paths = heard.flat()
  t.ok(heard.length < 100, `${heard.length} frames arrived`)
  t.ok(heard.every((p) => p.length <= 1000), 'none over 1,000 paths')
  t.ok(paths.includes(`/volumes/v0/${long}/${long}/${long}/${long}/${long}0`), 'the first change arrived as it was')
  t.ok(paths.includes(folded), 'the last ones arrived folded into their folders')
})

t.test('a listing keeps only names a path can hold: a node that lists "/", "..", NUL or 300 bytes has them left out', async (t) => {
  const listed = ['ok', 'a/b', '..', '.', '', 'nul\0x', 'x'.repeat(256), 'y'.repeat(255), 'é'.repeat(128)]
  const remote = await pair(t, { readdir: async () => listed } as unknown as Tree)
  t.same(await remote.readdir('/'), ['ok', 'y'.repeat(255)])
})
