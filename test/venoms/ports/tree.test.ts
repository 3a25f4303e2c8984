// ports/ over real TCP servers on port 0: connections as files, their bounds and their ends.
import { createServer, type Server, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { O_RDONLY, O_RDWR, type Tree } from '../../../tree/tree.js'
import { SyntheticTree } from '../../../tree/synthetic.js'
import { MAX_BUFFERED } from '../../../venoms/ports/connection.js'
import { portsDir, type PortsOptions } from '../../../venoms/ports/tree.js'

/** A TCP server on 127.0.0.1 and a port; every socket it took is closed at the end. */
async function serve (t: Test, onSocket: (socket: Socket) => void): Promise<{ server: Server, port: number, sockets: Socket[] }> {
  const sockets: Socket[] = []
  const server = createServer((socket) => { sockets.push(socket); socket.on('error', () => {}); onSocket(socket) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { for (const s of sockets) s.destroy(); return new Promise<void>((resolve) => server.close(() => resolve())) })
  return { server, port: (server.address() as { port: number }).port, sockets }
}

function portsTree (opts: PortsOptions = {}): Tree {
  return new SyntheticTree({ kind: 'dir', entries: { ports: portsDir(opts) } })
}

async function readAll (tree: Tree, path: string): Promise<string> {
  const fh = await tree.open(path, O_RDONLY)
  const chunks: Buffer[] = []
  for (let offset = 0; ;) {
    const chunk = await tree.read(path, fh, offset, 65536)
    if (chunk.length === 0) break
    chunks.push(Buffer.from(chunk))
    offset += chunk.length
  }
  await tree.release(path, fh)
  return Buffer.concat(chunks).toString()
}

/** Reads `new` and opens the connection's data; gives its path and handle. */
async function connect (tree: Tree, port: number): Promise<{ data: string, fh: number, id: string }> {
  const id = (await readAll(tree, `/ports/tcp/${port}/new`)).trim()
  const data = `/ports/tcp/${port}/${id}/data`
  return { data, fh: await tree.open(data, O_RDWR), id }
}

t.test('bytes go both ways; the server\'s end is the reader\'s end; the last close closes the connection', async (t) => {
  const { port, sockets } = await serve(t, (socket) => socket.on('data', (d) => socket.write(d.toString().toUpperCase())).on('end', () => socket.end('bye\n')))
  const tree = portsTree()
  const { data, fh, id } = await connect(tree, port)
  t.equal(await tree.write(data, fh, 0, Buffer.from('hello\n')), 6)
  t.equal(Buffer.from(await tree.read(data, fh, 0, 100)).toString(), 'HELLO\n')
  t.same(await tree.readdir(`/ports/tcp/${port}`), ['new', id], 'the open connection is listed')
  t.same(await tree.readdir('/ports/tcp'), [String(port)])
  await writeCtl(tree, `/ports/tcp/${port}/${id}/ctl`, 'eof\n')
  t.equal(Buffer.from(await tree.read(data, fh, 0, 100)).toString(), 'bye\n', 'the server answered the end of input')
  t.equal((await tree.read(data, fh, 0, 100)).length, 0, 'then the end')
  const status = JSON.parse(await readAll(tree, `/ports/tcp/${port}/${id}/status`))
  t.match(status, { id, port, bytesIn: 10, bytesOut: 6 })
  await tree.release(data, fh)
  await t.rejects(tree.getattr(data), { code: 'ENOENT' }, 'closed with its last handle')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.ok(sockets[0].destroyed || sockets[0].readableEnded, 'the server saw it close')
})

t.test('refusals: nothing listening, a bad port, a sandbox without network, too many connections', async (t) => {
  const closed = await serve(t, () => {})
  const deadPort = closed.port
  await new Promise<void>((resolve) => closed.server.close(() => resolve()))
  const tree = portsTree()
  await t.rejects(readAll(tree, `/ports/tcp/${deadPort}/new`), { code: 'ECONNREFUSED', message: new RegExp(`nothing listens on port ${deadPort}`) })
  await t.rejects(tree.getattr('/ports/tcp/70000/new'), { code: 'ENOENT', message: /ports\/tcp\/ holds port numbers, 1 to 65535/ })
  await t.rejects(tree.getattr('/ports/tcp/080/new'), { code: 'ENOENT' })
  await t.rejects(tree.getattr('/ports/tcp/http/new'), { code: 'ENOENT' })
  const { port } = await serve(t, () => {})
  const fenced = portsTree({ refuse: () => 'sandbox web has "network": false: nothing can connect to its ports' })
  await t.rejects(readAll(fenced, `/ports/tcp/${port}/new`), { code: 'EACCES', message: /network": false/ })
  const few = portsTree({ maxConnections: 2 })
  await connect(few, port)
  await connect(few, port)
  await t.rejects(readAll(few, `/ports/tcp/${port}/new`), { code: 'EAGAIN', message: /2 connections are open here already/ })
  await t.rejects(writeCtl(few, `/ports/tcp/${port}/1/ctl`, 'explode\n'), { code: 'EINVAL', message: /takes "eof"/ })
})

t.test('many asked at once do not pass the bound: one being dialled counts', async (t) => {
  const { port } = await serve(t, () => {})
  const tree = portsTree({ maxConnections: 5 })
  const asked = await Promise.allSettled(Array.from({ length: 40 }, async () => await readAll(tree, `/ports/tcp/${port}/new`)))
  t.equal(asked.filter((a) => a.status === 'fulfilled').length, 5, 'five connections made')
  t.ok(asked.filter((a) => a.status === 'rejected').every((a) => (a as PromiseRejectedResult).reason.code === 'EAGAIN'), 'the rest refused with EAGAIN')
  t.equal((await tree.readdir(`/ports/tcp/${port}`)).length, 1 + 5, 'new and five connections are listed')
})

t.test('a connection nobody opens is closed; ctl close ends a waiting read', async (t) => {
  let seen = 0
  const { port, sockets } = await serve(t, () => { seen++ })
  const tree = portsTree({ unclaimedMs: 100 })
  const id = (await readAll(tree, `/ports/tcp/${port}/new`)).trim()
  await new Promise((resolve) => setTimeout(resolve, 300))
  await t.rejects(tree.getattr(`/ports/tcp/${port}/${id}/data`), { code: 'ENOENT' }, 'gone after the unclaimed time')
  t.equal(seen, 1)
  t.ok(sockets[0].destroyed || sockets[0].readableEnded)
  const { data, fh, id: second } = await connect(tree, port)
  const waiting = tree.read(data, fh, 0, 100)
  await writeCtl(tree, `/ports/tcp/${port}/${second}/ctl`, 'close\n')
  t.equal((await waiting).length, 0, 'the waiting read got the end')
  await tree.release(data, fh)
  const again = await connect(tree, port)
  const controller = new AbortController()
  const abandoned = tree.read(again.data, again.fh, 0, 100, { signal: controller.signal })
  controller.abort()
  await t.rejects(abandoned, { code: 'ECANCELED' }, 'a reader that goes away stops waiting')
  await tree.release(again.data, again.fh)
})

t.test('a reader that is behind holds at most MAX_BUFFERED: the server is slowed, not the node\'s memory filled', async (t) => {
  let written = 0
  const { port } = await serve(t, (socket) => {
    const piece = Buffer.alloc(64 * 1024, 0x61)
    const pump = (): void => { while (written < 64 * 1024 * 1024 && socket.write(piece)) written += piece.length; if (written < 64 * 1024 * 1024) socket.once('drain', () => { written += piece.length; pump() }) }
    pump()
  })
  const tree = portsTree()
  const { data, fh, id } = await connect(tree, port)
  await new Promise((resolve) => setTimeout(resolve, 500))
  const status = JSON.parse(await readAll(tree, `/ports/tcp/${port}/${id}/status`))
  t.ok(status.bytesIn <= MAX_BUFFERED + 256 * 1024, `held ${status.bytesIn} bytes for a reader that read nothing`)
  t.ok(written < 16 * 1024 * 1024, `the server wrote ${written} bytes of 64 MiB and waits`)
  let got = 0
  while (got < 8 * 1024 * 1024) got += (await tree.read(data, fh, 0, 1024 * 1024)).length
  t.ok(written >= 8 * 1024 * 1024, 'reading lets the server go on')
  await tree.release(data, fh)
})

async function writeCtl (tree: Tree, path: string, text: string): Promise<void> {
  const fh = await tree.open(path, 1)
  try {
    await tree.write(path, fh, 0, Buffer.from(text))
    await tree.flush(path, fh)
  } finally {
    await tree.release(path, fh)
  }
}
