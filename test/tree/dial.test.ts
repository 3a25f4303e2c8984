// A dialler judges the host by anything that arrives, not only by its pings: a host that sends
// data but whose pings are late (queued behind it) keeps the connection; a silent one loses it.
import { once } from 'node:events'
import t, { type Test } from 'tap'
import { WebSocketServer, type WebSocket } from 'ws'
import { DEAD_AFTER_MS, Dialer } from '../../tree/dial.js'
import { decodeFrame, encodeFrame, PROTOCOL_VERSION } from '../../tree/wire.js'

/** A host that welcomes every peer and never pings; `busy` ones then send a notice every half second. */
async function fakeHost (t: Test, busy: boolean): Promise<string> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await once(wss, 'listening')
  const sockets = new Set<WebSocket>()
  wss.on('connection', (socket) => {
    sockets.add(socket)
    socket.once('message', (data) => {
      if (decodeFrame(data as Buffer).t !== 'hello') return
      socket.send(encodeFrame({ t: 'welcome', protocol: PROTOCOL_VERSION, host: 'herds' }))
      if (!busy) return
      const timer = setInterval(() => socket.send(encodeFrame({ t: 'changed', paths: ['/nodes/x'] })), 500)
      socket.on('close', () => clearInterval(timer))
    })
  })
  t.teardown(() => { for (const s of sockets) s.terminate(); wss.close() })
  return `ws://127.0.0.1:${(wss.address() as { port: number }).port}`
}

t.test('a host that sends data without pinging keeps the link; a silent one loses it', async (t) => {
  const dial = async (url: string): Promise<{ dialer: Dialer, lost: () => boolean }> => {
    const dialer = new Dialer({ url, hello: { t: 'hello', role: 'mount', protocol: PROTOCOL_VERSION }, backoff: { minMs: 60_000, maxMs: 60_000 } })
    let lost = false
    dialer.on('disconnect', () => { lost = true })
    await dialer.start()
    t.teardown(() => dialer.stop())
    return { dialer, lost: () => lost }
  }
  const busy = await dial(await fakeHost(t, true))
  const silent = await dial(await fakeHost(t, false))
  const started = Date.now()
  while (!silent.lost() && Date.now() - started < DEAD_AFTER_MS + 10_000) await new Promise((resolve) => setTimeout(resolve, 200))
  t.ok(silent.lost(), `the silent host's link was dropped (after ${((Date.now() - started) / 1000).toFixed(1)} s)`)
  t.notOk(busy.lost(), 'the busy host\'s link is still up')
  t.ok(busy.dialer.peer && !busy.dialer.peer.closed, 'and usable')
})
