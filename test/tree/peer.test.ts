// The wire between two real peers on a WebSocket on port 0.
import { once } from 'node:events'
import t, { type Test } from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { HerdsError } from '../../tree/errno.js'
import { Peer, remoteTree } from '../../tree/peer.js'
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
