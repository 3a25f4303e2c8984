// What a connection opened is released when it goes away; long errors travel intact.
import { spawnSync } from 'node:child_process'
import { readdirSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { startHost } from '../../host/server.js'
import { connectHost } from '../../mount/client.js'
import { startNode } from '../../nodes/node.js'
import { tempDir } from '../e2e/harness.js'

const host = await startHost({ port: 0, home: join(tempDir(t), 'host') })
t.teardown(() => host.stop())
const nodeHome = join(tempDir(t), 'node')
const node = await startNode({ host: host.url, token: host.adminToken, name: 'studio', home: nodeHome })
t.teardown(() => node.stop())

/** Descriptors of this process open on the node's file v/f (counting all would count sockets closing meanwhile). */
const openFds = (): number => readdirSync('/proc/self/fd').filter((fd) => {
  try { return readlinkSync(`/proc/self/fd/${fd}`) === join(nodeHome, 'volumes', 'v', 'f') } catch { return false }
}).length

t.test('handles of a mount that disconnects are released on the node', async (t) => {
  const setup = await connectHost(host.url, { token: host.adminToken })
  await setup.tree.mkdir('/nodes/studio/volumes/v', 0o755)
  const made = await setup.tree.create('/nodes/studio/volumes/v/f', 0o644)
  t.match(made.stat, { mode: 0o100644, size: 0, nlink: 1 }, 'create answers across the host with the new file\'s attributes')
  await setup.tree.release('/nodes/studio/volumes/v/f', made.fh)
  setup.close()
  const before = openFds()
  const mount = await connectHost(host.url, { token: host.adminToken })
  for (let i = 0; i < 50; i++) await mount.tree.open('/nodes/studio/volumes/v/f', 0)
  t.ok(openFds() >= before + 50, 'fifty files open')
  mount.close()
  // Releases go 32 at a time over the wire: poll with a deadline, not a fixed wait.
  const deadline = Date.now() + 10_000
  while (openFds() > before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(openFds(), before, 'every one released')
})

t.test('an error about a very long path is cut to fit, and the connection lives', async (t) => {
  const mount = await connectHost(host.url, { token: host.adminToken })
  t.teardown(() => mount.close())
  const long = '/nodes/studio/exec/jobs/' + Array.from({ length: 16 }, () => 'x'.repeat(250)).join('/')
  await t.rejects(mount.tree.getattr(long), { code: 'ENOENT' })
  t.same(await mount.tree.readdir('/nodes'), ['studio'], 'still connected')
  t.ok(host.registry.get('studio')?.link.connected, 'the node is still connected too')
})

t.test('a busy port is one clear error', async (t) => {
  await t.rejects(startHost({ port: host.port, home: join(tempDir(t), 'host2') }), { code: 'EBUSY', message: new RegExp(`port ${host.port} on 127.0.0.1 is in use`) })
})

t.test('a connection cannot use a file another connection opened', async (t) => {
  const owner = await connectHost(host.url, { token: host.adminToken })
  t.teardown(() => owner.close())
  const other = await connectHost(host.url, { token: host.adminToken })
  t.teardown(() => other.close())
  await owner.tree.mkdir('/nodes/studio/volumes/private', 0o755).catch(() => {})
  const path = '/nodes/studio/volumes/private/secret'
  const { fh } = await owner.tree.create(path, 0o600)
  await owner.tree.write(path, fh, 0, Buffer.from('mine'))
  await t.rejects(other.tree.read(path, fh, 0, 100), { code: 'EBADF' }, 'no reading through it')
  await t.rejects(other.tree.write(path, fh, 0, Buffer.from('theirs')), { code: 'EBADF' }, 'no writing through it')
  await other.tree.release(path, fh) // quietly ignored
  t.equal(Buffer.from(await owner.tree.read(path, fh, 0, 100)).toString(), 'mine', 'the owner\'s handle still works')
  await owner.tree.release(path, fh)
})

t.test('a lock and an fsync act on the file their handle names, however each side numbers handles', async (t) => {
  const first = await connectHost(host.url, { token: host.adminToken })
  t.teardown(() => first.close())
  const second = await connectHost(host.url, { token: host.adminToken })
  t.teardown(() => second.close())
  await first.tree.mkdir('/nodes/studio/volumes/numbers', 0o755).catch(() => {})
  const dir = '/nodes/studio/volumes/numbers'
  // The first connection takes the host's low numbers, so the second's own numbers and the host's differ.
  const decoys = await Promise.all(['a', 'b', 'c'].map(async (name) => (await first.tree.create(`${dir}/${name}`, 0o644)).fh))
  t.teardown(() => Promise.all(decoys.map((fh, i) => first.tree.release(`${dir}/${'abc'[i]}`, fh))))
  const { fh } = await second.tree.create(`${dir}/target`, 0o644)
  t.teardown(() => second.tree.release(`${dir}/target`, fh))
  await second.tree.setlk(`${dir}/target`, fh, 'me.1.1', 'write', 0, 0, false)
  await second.tree.fsync(`${dir}/target`, fh, false)
  const disk = join(nodeHome, 'volumes', 'numbers')
  const locked = (name: string): string => spawnSync('python3', ['-c', 'import fcntl, sys\ntry:\n    fcntl.lockf(open(sys.argv[1], "r+"), fcntl.LOCK_SH | fcntl.LOCK_NB); print("free")\nexcept OSError:\n    print("locked")', join(disk, name)], { encoding: 'utf8' }).stdout.trim()
  t.equal(locked('target'), 'locked', 'the file the handle names')
  t.same(['a', 'b', 'c'].map(locked), ['free', 'free', 'free'], 'and no other')
})
