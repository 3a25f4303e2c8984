// The mount's cache against a real host and node (no FUSE): what it saves in round trips, and that
// what it serves is what the node has. Invalidations from the node's watch are tested through a
// real mount in test/e2e/volumes.test.ts.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { startHost } from '../../host/server.js'
import { CachedTree } from '../../mount/cache.js'
import { HerdsError } from '../../tree/errno.js'
import { connectHost } from '../../mount/client.js'
import { startNode } from '../../nodes/node.js'
import { callOp, treeFromCall } from '../../tree/peer.js'
import { O_RDONLY, O_RDWR, type Op, type Tree } from '../../tree/tree.js'
import { tempDir } from '../e2e/harness.js'

const host = await startHost({ port: 0, home: join(tempDir(t), 'host') })
t.teardown(() => host.stop())
const nodeHome = join(tempDir(t), 'node')
const node = await startNode({ host: host.url, token: host.adminToken, name: 'studio', home: nodeHome })
t.teardown(() => node.stop())
const connection = await connectHost(host.url, { token: host.adminToken })
t.teardown(() => connection.close())

/** The remote tree, counting the calls that reach it. */
function counted (inner: Tree): { tree: Tree, calls: Record<string, number> } {
  const calls: Record<string, number> = {}
  return { calls, tree: treeFromCall((op: Op, args, ctx) => { calls[op] = (calls[op] ?? 0) + 1; return callOp(inner, op, args, ctx) }) }
}

const dir = '/nodes/studio/volumes/cached'
await connection.remote.mkdir(dir, 0o755)
const MiB = 1024 * 1024
const pattern = Buffer.alloc(4 * MiB)
for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 7 + (i >> 12)) & 0xff

t.test('writes in 128 KiB pieces go out as 1 MiB ones, and the node has every byte', async (t) => {
  const { tree, calls } = counted(connection.remote)
  const cache = new CachedTree(tree).tree
  const path = `${dir}/big.bin`
  const { fh } = await cache.create(path, 0o644)
  for (let offset = 0; offset < pattern.length; offset += 128 * 1024) await cache.write(path, fh, offset, pattern.subarray(offset, offset + 128 * 1024))
  t.equal((await cache.getattr(path)).size, pattern.length, 'a stat counts what was gathered')
  await cache.flush(path, fh)
  await cache.release(path, fh)
  t.ok(calls.write <= 5, `${calls.write} writes reached the node for 32 made`)
  t.ok(readFileSync(join(nodeHome, 'volumes', 'cached', 'big.bin')).equals(pattern), 'the file on the node\'s disk is whole')
})

t.test('sequential reads in 128 KiB pieces are served from 1 MiB read ahead', async (t) => {
  const { tree, calls } = counted(connection.remote)
  const cache = new CachedTree(tree).tree
  const path = `${dir}/big.bin`
  await cache.getattr(path) // as the kernel does before it opens
  const fh = await cache.open(path, O_RDONLY)
  const chunks: Buffer[] = []
  for (let offset = 0; ; offset += 128 * 1024) {
    const chunk = await cache.read(path, fh, offset, 128 * 1024)
    if (chunk.length === 0) break
    chunks.push(Buffer.from(chunk))
  }
  await cache.release(path, fh)
  t.ok(Buffer.concat(chunks).equals(pattern), 'the bytes are the file\'s')
  t.ok(calls.read <= 6, `${calls.read} reads reached the node for 33 made`)
})

t.test('attributes and listings are kept; synthetic files never are', async (t) => {
  const { tree, calls } = counted(connection.remote)
  const cache = new CachedTree(tree).tree
  for (let i = 0; i < 20; i++) {
    await cache.getattr(`${dir}/big.bin`)
    await cache.readdir(dir)
    await t.rejects(cache.getattr(`${dir}/missing.h`), { code: 'ENOENT' })
    await cache.getattr('/nodes/studio/exec/status')
  }
  t.equal(calls.getattr, 2 + 20, 'one round trip each for the file and the missing name; every one for exec/status')
  t.equal(calls.readdir, 1)
})

t.test('a listing with attributes is one round trip, and its attributes and names are kept; its sizes count what this mount wrote', async (t) => {
  const folder = `${dir}/plus`
  await connection.remote.mkdir(folder, 0o755)
  for (const name of ['a', 'b', 'c']) await connection.remote.release(`${folder}/${name}`, (await connection.remote.create(`${folder}/${name}`, 0o644)).fh)
  await new Promise((resolve) => setTimeout(resolve, 1100)) // settled, so kept
  const { tree, calls } = counted(connection.remote)
  const cache = new CachedTree(tree).tree
  const entries = new Map(await cache.readdirplus(folder))
  t.same([...entries.keys()].sort(), ['a', 'b', 'c'])
  for (const name of ['a', 'b', 'c']) t.same(await cache.getattr(`${folder}/${name}`), entries.get(name), `${name}: kept`)
  await cache.readdir(folder)
  t.same([calls.readdirplus, calls.getattr, calls.readdir], [1, undefined, undefined], 'no other round trip')
  const fh = await cache.open(`${folder}/a`, O_RDWR)
  await cache.write(`${folder}/a`, fh, 0, Buffer.from('gathered, not sent yet'))
  t.equal(new Map(await cache.readdirplus(folder)).get('a')?.size, 22, 'the size counts the write this mount gathered')
  await cache.release(`${folder}/a`, fh)
})

t.test('a handle open for reading and writing reads what it wrote; a change drops what was kept', async (t) => {
  const cache = new CachedTree(connection.remote)
  const path = `${dir}/rw.txt`
  const { fh } = await cache.tree.create(path, 0o644)
  await cache.tree.write(path, fh, 0, Buffer.from('hello'))
  t.equal(Buffer.from(await cache.tree.read(path, fh, 0, 100)).toString(), 'hello', 'read after write')
  await cache.tree.release(path, fh)
  const reader = await cache.tree.open(path, O_RDWR)
  t.equal(Buffer.from(await cache.tree.read(path, reader, 0, 100)).toString(), 'hello')
  await connection.remote.release(path, await connection.remote.open(path, O_RDWR).then(async (other) => {
    await connection.remote.write(path, other, 0, Buffer.from('HELLO'))
    return other
  }))
  t.equal(Buffer.from(await cache.tree.read(path, reader, 0, 100)).toString(), 'hello', 'kept until told')
  cache.invalidate({ paths: [path] })
  t.equal(Buffer.from(await cache.tree.read(path, reader, 0, 100)).toString(), 'HELLO', 'fresh once told')
  await cache.tree.release(path, reader)
})

t.test('two handles on one file: writes land in the order they were made', async (t) => {
  const cache = new CachedTree(connection.remote)
  const path = `${dir}/two.txt`
  const { fh: a } = await cache.tree.create(path, 0o644)
  const b = await cache.tree.open(path, O_RDWR)
  await cache.tree.write(path, a, 0, Buffer.from('AAAA'))
  await cache.tree.write(path, b, 0, Buffer.from('BBBB'))
  await cache.tree.release(path, b)
  await cache.tree.release(path, a)
  t.equal(readFileSync(join(nodeHome, 'volumes', 'cached', 'two.txt'), 'utf8'), 'BBBB', 'the later write wins, as on a disk')
})

t.test('two writes at once on one handle both land', async (t) => {
  const cache = new CachedTree(connection.remote)
  const path = `${dir}/parallel.bin`
  const { fh } = await cache.tree.create(path, 0o644)
  const piece = 640 * 1024
  await Promise.all([
    cache.tree.write(path, fh, 0, pattern.subarray(0, piece)),
    cache.tree.write(path, fh, piece, pattern.subarray(piece, 2 * piece)),
  ])
  await cache.tree.flush(path, fh)
  await cache.tree.release(path, fh)
  t.ok(readFileSync(join(nodeHome, 'volumes', 'cached', 'parallel.bin')).equals(pattern.subarray(0, 2 * piece)))
})

t.test('gathered writes reach the node soon even if the file stays open', async (t) => {
  const cache = new CachedTree(connection.remote)
  const path = `${dir}/log.txt`
  const { fh } = await cache.tree.create(path, 0o644)
  await cache.tree.write(path, fh, 0, Buffer.from('line 1\n'))
  await new Promise((resolve) => setTimeout(resolve, 600))
  t.equal(readFileSync(join(nodeHome, 'volumes', 'cached', 'log.txt'), 'utf8'), 'line 1\n', 'on the node\'s disk while still open')
  await cache.tree.release(path, fh)
})

t.test('an open file renamed with writes still gathered: they follow it to its new name', async (t) => {
  const cache = new CachedTree(connection.remote)
  const from = `${dir}/draft.txt`
  const to = `${dir}/final.txt`
  const { fh } = await cache.tree.create(from, 0o644)
  await cache.tree.write(from, fh, 0, Buffer.from('kept'))
  await cache.tree.rename(from, to)
  t.equal((await cache.tree.getattr(to)).size, 4)
  await cache.tree.write(to, fh, 4, Buffer.from(' whole'))
  await cache.tree.release(to, fh)
  t.equal(readFileSync(join(nodeHome, 'volumes', 'cached', 'final.txt'), 'utf8'), 'kept whole')
})

t.test('a folder\'s attributes are asked anew once a name in it came or went through the mount (rsync -a reads them)', async (t) => {
  const cache = new CachedTree(connection.remote).tree
  const folder = `${dir}/timed`
  await cache.mkdir(folder, 0o755)
  await cache.utimens(folder, { sec: 981173106, nsec: 0 }, { sec: 981173106, nsec: 0 })
  await new Promise((resolve) => setTimeout(resolve, 1200)) // past the settling second: now it is kept
  t.equal((await cache.getattr(folder)).mtimeMs, 981173106000, 'the time as set')
  await cache.release(`${folder}/.tmp`, (await cache.create(`${folder}/.tmp`, 0o644)).fh)
  await cache.rename(`${folder}/.tmp`, `${folder}/file`)
  const onNode = (await connection.remote.getattr(folder)).mtimeMs
  t.not(onNode, 981173106000, 'the rename changed the folder\'s time on the node')
  t.equal((await cache.getattr(folder)).mtimeMs, onNode, 'and the mount says so, not what it kept')
})

/** The remote tree, whose writes wait for `gate` (held writes stand for a slow link) and may be made to fail. */
function gated (inner: Tree): { tree: Tree, open: () => void, inFlight: () => number, failAt?: number, fail: (offset: number) => void } {
  let release: () => void = () => {}
  let gate = new Promise<void>((resolve) => { release = resolve })
  let waiting = 0
  let failAt: number | undefined
  return {
    open: () => { release(); gate = Promise.resolve() },
    inFlight: () => waiting,
    fail: (offset) => { failAt = offset },
    tree: treeFromCall(async (op: Op, args, ctx) => {
      if (op === 'write') {
        waiting += (args[3] as Uint8Array).length
        try {
          await gate
          if (args[2] === failAt) throw new HerdsError('ENOSPC', 'no space left on the node')
        } finally {
          waiting -= (args[3] as Uint8Array).length
        }
      }
      return callOp(inner, op, args, ctx)
    }),
  }
}

t.test('large writes are answered once on their way, at most writeAheadBytes at once, and all land', async (t) => {
  const link = gated(connection.remote)
  const cache = new CachedTree(link.tree, { writeAheadBytes: 2 * MiB }).tree
  const path = `${dir}/ahead.bin`
  const { fh } = await cache.create(path, 0o644)
  await cache.write(path, fh, 0, pattern.subarray(0, MiB))
  await cache.write(path, fh, MiB, pattern.subarray(MiB, 2 * MiB))
  t.equal(link.inFlight(), 2 * MiB, 'two 1 MiB writes answered while the node has taken neither')
  let third = false
  const writing = cache.write(path, fh, 2 * MiB, pattern.subarray(2 * MiB, 3 * MiB)).then(() => { third = true })
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(third, false, 'the third waits: the budget is spent')
  t.equal(link.inFlight(), 2 * MiB)
  link.open()
  await writing
  await cache.write(path, fh, 3 * MiB, pattern.subarray(3 * MiB))
  await cache.flush(path, fh)
  t.equal(link.inFlight(), 0, 'flush waits for every write to land')
  await cache.release(path, fh)
  t.ok(readFileSync(join(nodeHome, 'volumes', 'cached', 'ahead.bin')).equals(pattern), 'the node has every byte, in place')
})

t.test('a write that fails on its way is told to the next write, then flush has nothing to tell', async (t) => {
  const link = gated(connection.remote)
  link.open()
  link.fail(MiB)
  const cache = new CachedTree(link.tree).tree
  const path = `${dir}/full.bin`
  const { fh } = await cache.create(path, 0o644)
  await cache.write(path, fh, 0, pattern.subarray(0, MiB))
  await cache.write(path, fh, MiB, pattern.subarray(MiB, 2 * MiB))
  await new Promise((resolve) => setTimeout(resolve, 100))
  await t.rejects(cache.write(path, fh, 2 * MiB, pattern.subarray(2 * MiB, 3 * MiB)), { code: 'ENOSPC' }, 'the writer hears of it')
  await cache.flush(path, fh)
  await cache.release(path, fh)
})

t.test('a write that fails on its way and is not followed by another is told at flush (close)', async (t) => {
  const link = gated(connection.remote)
  link.open()
  link.fail(0)
  const cache = new CachedTree(link.tree).tree
  const path = `${dir}/full2.bin`
  const { fh } = await cache.create(path, 0o644)
  await cache.write(path, fh, 0, pattern.subarray(0, MiB))
  await t.rejects(cache.flush(path, fh), { code: 'ENOSPC' })
  await cache.release(path, fh)
})

t.test('a write over one still on its way waits for it, so the later one wins', async (t) => {
  const link = gated(connection.remote)
  const cache = new CachedTree(link.tree).tree
  const path = `${dir}/over.bin`
  const { fh } = await cache.create(path, 0o644)
  await cache.write(path, fh, 0, Buffer.alloc(MiB, 'a'))
  const second = cache.write(path, fh, 512 * 1024, Buffer.alloc(MiB, 'b'))
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(link.inFlight(), MiB, 'the second is not sent while the first is on its way')
  link.open()
  await second
  await cache.release(path, fh)
  const got = readFileSync(join(nodeHome, 'volumes', 'cached', 'over.bin'))
  t.ok(got.equals(Buffer.concat([Buffer.alloc(512 * 1024, 'a'), Buffer.alloc(MiB, 'b')])))
})

t.test('a read in several pieces at once, as the kernel sends them, is served by the windows read ahead', async (t) => {
  const { tree, calls } = counted(connection.remote)
  const cache = new CachedTree(tree).tree
  const path = `${dir}/big.bin`
  await cache.getattr(path)
  const fh = await cache.open(path, O_RDONLY)
  const piece = 128 * 1024
  const chunks: Uint8Array[] = []
  // A read ahead by the kernel: a window's pieces asked for at once, from an offset that is not a window's.
  for (let offset = 3 * piece; offset < pattern.length; offset += 8 * piece) {
    const ends = Array.from({ length: 8 }, (_, i) => offset + i * piece).filter((o) => o < pattern.length)
    chunks.push(...await Promise.all(ends.map((o) => cache.read(path, fh, o, piece))))
  }
  await cache.release(path, fh)
  t.ok(Buffer.concat(chunks).equals(pattern.subarray(3 * piece)), 'the bytes are the file\'s')
  t.ok(calls.read <= 6, `${calls.read} reads reached the node for ${chunks.length} made`)
})

t.test('a close of a real file asks the node nothing once its writes have landed (its tree holds nothing back)', async (t) => {
  const { tree, calls } = counted(connection.remote)
  const cache = new CachedTree(tree).tree
  const path = `${dir}/closed.txt`
  const { fh } = await cache.create(path, 0o644)
  await cache.write(path, fh, 0, Buffer.from('closed\n'))
  await cache.flush(path, fh)
  t.equal(calls.write, 1, 'the write went out at the close')
  t.equal(calls.flush, undefined, 'no flush reached the node')
  await cache.release(path, fh)
  t.equal(readFileSync(join(nodeHome, 'volumes', 'cached', 'closed.txt'), 'utf8'), 'closed\n')
})
