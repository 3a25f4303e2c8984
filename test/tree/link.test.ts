// A link's two ends behave as a WebSocket's would for a Peer: frames in order, held while paused
// (and counted as the sender's bufferedAmount), a close that follows what was sent before it.
import { once } from 'node:events'
import t from 'tap'
import { HerdsError } from '../../tree/errno.js'
import { LinkEnd } from '../../tree/link.js'
import { Peer, remoteTree } from '../../tree/peer.js'
import { makeStat, S_IFREG, type Tree } from '../../tree/tree.js'

/** What `end` is handed, as text, until `count` frames came. */
async function taken (end: LinkEnd, count: number): Promise<string[]> {
  const seen: string[] = []
  return new Promise((resolve) => end.on('message', (data) => { if (seen.push(data.toString()) === count) resolve(seen) }))
}

t.test('frames arrive in order, on a later turn, after each end says open', async (t) => {
  const [a, b] = LinkEnd.pair()
  await Promise.all([once(a, 'open'), once(b, 'open')])
  const arriving = taken(b, 3)
  let early = false
  b.once('message', () => { early = true })
  for (const text of ['one', 'two', 'three']) a.send(Buffer.from(text))
  t.notOk(early, 'nothing is handed over while the sender is still running')
  t.same(await arriving, ['one', 'two', 'three'])
})

t.test('a paused end holds what comes, and the sender sees it waiting', async (t) => {
  const [a, b] = LinkEnd.pair()
  b.pause()
  const seen: string[] = []
  b.on('message', (data) => seen.push(data.toString()))
  a.send(Buffer.alloc(1000, 'x'))
  a.send(Buffer.from('more'))
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(seen, [], 'nothing while paused')
  t.equal(a.bufferedAmount, 1004, 'the sender counts what was not taken')
  b.resume()
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(seen.map((s) => s.length), [1000, 4], 'all of it once resumed')
  t.equal(a.bufferedAmount, 0)
})

t.test('close reaches the other end after what was sent before it; both say close once', async (t) => {
  const [a, b] = LinkEnd.pair()
  const seen: string[] = []
  b.on('message', (data) => seen.push(data.toString()))
  const closes: Array<[string, number, string]> = []
  a.on('close', (code, reason) => closes.push(['a', code, reason.toString()]))
  b.on('close', (code, reason) => closes.push(['b', code, reason.toString()]))
  a.send(Buffer.from('bye'))
  a.close(4001, 'EACCES')
  a.send(Buffer.from('after close'))
  t.equal(a.readyState, 2, 'closing')
  await once(b, 'close')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(seen, ['bye'], 'what came before the close, and nothing after it')
  t.same(closes.sort(), [['a', 4001, 'EACCES'], ['b', 4001, 'EACCES']])
  t.equal(b.readyState, 3)
  b.send(Buffer.from('to nobody'))
  a.close()
  b.terminate()
  await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(closes.length, 2, 'no second close')
})

t.test('terminate closes both ends at once and drops what was not taken', async (t) => {
  const [a, b] = LinkEnd.pair()
  b.pause()
  const seen: string[] = []
  b.on('message', (data) => seen.push(data.toString()))
  a.send(Buffer.from('lost'))
  a.terminate()
  const [code] = await once(b, 'close') as [number]
  t.equal(code, 1006)
  b.resume()
  await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(seen, [])
  t.equal(a.bufferedAmount, 0)
})

t.test('a ping is answered with a pong, as ws does', async (t) => {
  const [a, b] = LinkEnd.pair()
  let pinged = false
  b.on('ping', () => { pinged = true })
  a.ping()
  await once(a, 'pong')
  t.ok(pinged)
})

t.test('two Peers over a link call each other\'s trees', async (t) => {
  const [a, b] = LinkEnd.pair()
  const served = {
    getattr: async (path: string) => makeStat(S_IFREG | 0o644, path.length),
    readdir: async () => { throw new HerdsError('ENOTDIR', 'not a folder') },
  } as unknown as Tree
  const server = new Peer(b)
  server.serve(served)
  const client = remoteTree(new Peer(a))
  t.equal((await client.getattr('/four')).size, 5, 'an answer, checked as one from the wire')
  await t.rejects(client.readdir('/'), { code: 'ENOTDIR', message: 'not a folder' }, 'an error crosses as an errno')
  a.close()
  await once(server, 'close')
  await t.rejects(client.getattr('/x'), { code: 'EHOSTDOWN' }, 'a closed link fails calls at once')
})
