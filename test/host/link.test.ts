// herds up's node and mount connect to their host inside the process (RunningHost.link): the same
// checks as over a WebSocket apply to them, token, hello, scope and revocation alike.
import { once } from 'node:events'
import { join } from 'node:path'
import t from 'tap'
import { startHost } from '../../host/server.js'
import { connectHost } from '../../mount/client.js'
import { startNode } from '../../nodes/node.js'
import { readWhole, writeWhole } from '../../tree/bind.js'
import { tempDir } from '../e2e/harness.js'

const host = await startHost({ port: 0, home: join(tempDir(t), 'host') })
t.teardown(() => host.stop())
const { secret: nodeToken } = await host.tokens.put({ name: 'studio-node', scope: 'node', node: 'studio' })
const node = await startNode({ host: host.url, token: nodeToken, open: () => host.link(nodeToken), name: 'studio', home: join(tempDir(t), 'node') })
t.teardown(() => node.stop())

/** A mount linked in-process with a new token of `scope`. */
async function linkedAs (scope: 'read' | 'run' | 'admin', name: string): Promise<Awaited<ReturnType<typeof connectHost>>> {
  const { secret } = await host.tokens.put({ name, scope })
  const mount = await connectHost(host.url, { token: secret, open: () => host.link(secret) })
  t.teardown(() => mount.close())
  return mount
}

t.test('a linked node and mount work as over the wire: files and jobs', async (t) => {
  const admin = await linkedAs('admin', 'linked-admin')
  await admin.tree.mkdir('/nodes/studio/volumes/v', 0o755)
  const made = await admin.tree.create('/nodes/studio/volumes/v/hello.txt', 0o644)
  t.match(made.stat, { mode: 0o100644, size: 0 }, 'create answers with the attributes through the link too')
  await admin.tree.write('/nodes/studio/volumes/v/hello.txt', made.fh, 0, Buffer.from('hello through a link\n'))
  await admin.tree.release('/nodes/studio/volumes/v/hello.txt', made.fh)
  t.equal((await readWhole(admin.tree, '/nodes/studio/volumes/v/hello.txt')).toString(), 'hello through a link\n')
  await writeWhole(admin.tree, '/nodes/studio/exec/cmd', Buffer.from('echo $((6 * 7))\n'))
  t.equal((await readWhole(admin.tree, '/nodes/studio/exec/exit')).toString(), '0\n')
  t.equal((await readWhole(admin.tree, '/nodes/studio/exec/stdout')).toString(), '42\n', 'a job ran on the linked node')
  t.equal(host.mounts(), 1, 'counted as a mount')
})

t.test('a token the host does not know is refused before anything is linked', async (t) => {
  t.throws(() => host.link('not-a-token'), { code: 'EACCES', message: /not known, revoked or expired/ })
  await t.rejects(connectHost(host.url, { token: 'not-a-token', open: () => host.link('not-a-token') }), { code: 'EACCES' }, 'and a mount says so')
})

t.test('a linked mount has its token\'s scope', async (t) => {
  const reader = await linkedAs('read', 'linked-reader')
  t.ok((await reader.tree.readdir('/nodes')).includes('studio'), 'it may read')
  await t.rejects(reader.tree.mkdir('/nodes/studio/volumes/not-for-readers', 0o755), { code: 'EACCES' }, 'it may not change a volume')
  await t.rejects(readWhole(reader.tree, '/.herds/control/tokens'), { code: 'EACCES' })
})

t.test('a node token linked for another name is refused at its hello', async (t) => {
  await t.rejects(startNode({ host: host.url, token: nodeToken, open: () => host.link(nodeToken), name: 'impostor', home: join(tempDir(t), 'impostor') }),
    { code: 'EACCES', message: /is for node "studio"; it cannot register as "impostor"/ })
})

t.test('revoking a linked mount\'s token closes its link, and it does not come back', async (t) => {
  const doomed = await linkedAs('run', 'linked-doomed')
  t.ok((await doomed.tree.readdir('/nodes')).includes('studio'))
  const fatal = once(doomed.dialer, 'fatal')
  const admin = await linkedAs('admin', 'linked-admin-2')
  await admin.tree.rmdir('/.herds/control/tokens/linked-doomed')
  const [err] = await fatal as [Error & { code?: string }]
  t.match(err, { code: 'EACCES' })
  await t.rejects(doomed.tree.readdir('/nodes'), { code: 'EHOSTDOWN' }, 'its calls fail at once')
  t.throws(() => host.link(''), { code: 'EACCES' })
})
