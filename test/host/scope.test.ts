// What a token's scope allows, checked against a real host over the wire (no FUSE), including the
// ways round a plain check: writing through a handle opened for reading, create on an existing
// file, acting after a revocation, and learning names by getattr.
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { allows, scopeNeeded } from '../../host/scope.js'
import { startHost } from '../../host/server.js'
import { connectHost } from '../../mount/client.js'
import { startNode } from '../../nodes/node.js'
import { readWhole } from '../../tree/bind.js'
import { O_RDONLY } from '../../tree/tree.js'
import { encodeFrame, PROTOCOL_VERSION, type Frame } from '../../tree/wire.js'
import { tempDir } from '../e2e/harness.js'

const host = await startHost({ port: 0, home: join(tempDir(t), 'host') })
t.teardown(() => host.stop())
const node = await startNode({ host: host.url, token: host.adminToken, name: 'studio', home: join(tempDir(t), 'node') })
t.teardown(() => node.stop())
const admin = await connectHost(host.url, { token: host.adminToken })
t.teardown(() => admin.close())

async function mountAs (scope: 'read' | 'run', name: string): Promise<Awaited<ReturnType<typeof connectHost>>> {
  const { secret } = await host.tokens.put({ name, scope })
  const mount = await connectHost(host.url, { token: secret })
  t.teardown(() => mount.close())
  return mount
}
const jobsRun = async (): Promise<number> => JSON.parse((await readWhole(admin.tree, '/nodes/studio/exec/status')).toString()).id ?? 0
const cmd = '/nodes/studio/exec/cmd'

t.test('a read token cannot write through a handle it opened for reading', async (t) => {
  const reader = await mountAs('read', 'r1')
  const before = await jobsRun()
  const fh = await reader.tree.open(cmd, O_RDONLY)
  await t.rejects(reader.tree.write(cmd, fh, 0, Buffer.from('touch /tmp/herds-should-not-exist\n')), { code: 'EBADF' })
  await reader.tree.flush(cmd, fh)
  await reader.tree.release(cmd, fh)
  t.equal(await jobsRun(), before, 'no job ran')
  const env = '/nodes/studio/exec/env'
  await t.rejects(reader.tree.open(env, O_RDONLY), { code: 'EACCES' }, 'nor may it read a job environment, where credentials live')
})

t.test('a read token may take read locks in a volume, but never a write lock that holds writers off', async (t) => {
  await admin.tree.mkdir('/nodes/studio/volumes/shared', 0o755)
  const file = '/nodes/studio/volumes/shared/db'
  await admin.tree.release(file, (await admin.tree.create(file, 0o644)).fh)
  const reader = await mountAs('read', 'r-locks')
  const fh = await reader.tree.open(file, O_RDONLY)
  t.teardown(() => reader.tree.release(file, fh).catch(() => {}))
  await t.rejects(reader.tree.setlk(file, fh, 'attacker.1.2', 'write', 0, 0, false), { code: 'EACCES' })
  await reader.tree.setlk(file, fh, 'reader.1.2', 'read', 0, 0, false)
  await reader.tree.setlk(file, fh, 'reader.1.2', 'unlock', 0, 0, false)
  const writer = await admin.tree.open(file, 2)
  await admin.tree.setlk(file, writer, 'writer.1.2', 'write', 0, 0, false)
  t.same(await reader.tree.getlk(file, fh, 'reader.1.2', 'read', 0, 0), { type: 'write', start: 0, length: 0, pid: 0 }, 'it sees the admin\'s write lock')
  await admin.tree.release(file, writer)
  t.equal(await reader.tree.getlk(file, fh, 'reader.1.2', 'read', 0, 0), null, 'released with its handle')
})

t.test('create on an existing cmd is a write: refused for read, audited for run', async (t) => {
  const reader = await mountAs('read', 'r2')
  await t.rejects(reader.tree.create(cmd, 0o644), { code: 'EACCES' })
  const runner = await mountAs('run', 'u1')
  const fh = await runner.tree.create('/nodes/studio/exec/jobs/by-create/cmd', 0o644).catch(() => 0)
  t.equal(fh, 0, 'jobs/<name> must be made first')
  await runner.tree.mkdir('/nodes/studio/exec/jobs/by-create', 0o755)
  const path = '/nodes/studio/exec/jobs/by-create/cmd'
  const { fh: h } = await runner.tree.create(path, 0o644)
  await runner.tree.write(path, h, 0, Buffer.from('echo via create\n'))
  await runner.tree.flush(path, h)
  await runner.tree.release(path, h)
  const audit = (await readWhole(admin.tree, '/.herds/control/audit.jsonl')).toString().trim().split('\n').map((l) => JSON.parse(l))
  t.ok(audit.some((e) => e.token === 'u1' && e.event === 'job' && e.path === path && e.cmd === 'echo via create\n'), 'audited')
})

t.test('a read token learns nothing of tokens by getattr', async (t) => {
  const reader = await mountAs('read', 'r3')
  await t.rejects(reader.tree.getattr('/.herds/control/tokens/admin'), { code: 'EACCES' })
  await t.rejects(reader.tree.getattr('/.herds/control/tokens/nosuch'), { code: 'EACCES' }, 'the same answer whether it exists or not')
  const dir = await reader.tree.getattr('/.herds/control/tokens')
  t.equal(dir.mode & 0o777, 0, 'the folder shows no permissions')
  t.equal((await reader.tree.getattr('/.herds/control/README.md')).mode & 0o444, 0o444, 'the README is readable')
  // A listing with attributes says no more than getattr of each name would.
  await t.rejects(reader.tree.readdirplus('/.herds/control/tokens'), { code: 'EACCES' }, 'readdirplus: no token\'s name, as readdir')
  const control = new Map(await reader.tree.readdirplus('/.herds/control'))
  // (Computed files' times are the moment they are asked about: only modes and sizes are compared.)
  const readme = await reader.tree.getattr('/.herds/control/README.md')
  t.same([control.get('README.md')?.mode, control.get('README.md')?.size], [readme.mode, readme.size], 'the rest as getattr says')
  t.equal(control.get('tokens')?.mode, dir.mode, 'modes cut to the scope')
})

/** A bare WebSocket client over TCP that never answers a close: what a hostile peer would be. */
async function stubbornClient (url: string, token: string): Promise<{ send (frame: Frame): void, socket: Socket }> {
  const { port } = new URL(url)
  const socket = connect(Number(port), '127.0.0.1')
  await once(socket, 'connect')
  socket.write(`GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
    `Sec-WebSocket-Version: 13\r\nAuthorization: Bearer ${token}\r\n\r\n`)
  const [head] = await once(socket, 'data') as [Buffer]
  if (!head.toString().startsWith('HTTP/1.1 101')) throw new Error(`no upgrade: ${head.toString()}`)
  return {
    socket,
    send: (frame) => {
      const payload = encodeFrame(frame)
      const mask = randomBytes(4)
      const length = payload.length < 126 ? Buffer.from([0x80 | payload.length]) : Buffer.from([0x80 | 126, payload.length >> 8, payload.length & 0xff])
      socket.write(Buffer.concat([Buffer.from([0x82]), length, mask, payload.map((b, i) => b ^ mask[i % 4])]))
    },
  }
}

t.test('after a revocation nothing more is served, even to a peer that ignores the close', async (t) => {
  const { secret } = await host.tokens.put({ name: 'stubborn', scope: 'run' })
  const client = await stubbornClient(host.url, secret)
  t.teardown(() => client.socket.destroy())
  client.send({ t: 'hello', role: 'mount', protocol: PROTOCOL_VERSION })
  await new Promise((resolve) => setTimeout(resolve, 100))
  await admin.tree.rmdir('/.herds/control/tokens/stubborn')
  // Sent after the bye; this peer will never answer the close.
  client.send({ t: 'req', id: 1, op: 'mkdir', args: ['/nodes/studio/volumes/after-revoke', 0o755] })
  const closed = await Promise.race([once(client.socket, 'close').then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 3000))])
  t.ok(closed, 'the host cut the connection within the grace')
  t.notOk((await admin.tree.readdir('/nodes/studio/volumes')).includes('after-revoke'), 'nothing was done after the revocation')
})

t.test('whoever may change a path may read it, so the attributes a change answers with need no hiding', async (t) => {
  const paths = ['/', '/README.md', '/.herds/control', '/.herds/control/README.md', '/.herds/control/tokens/x', '/.herds/venoms/run/new',
    '/.herds/venoms/run/jobs/j/env', '/nodes/studio/exec/new', '/nodes/studio/exec/env', '/nodes/studio/exec/jobs/j/cmd',
    '/nodes/studio/sandboxes/s/config.json', '/nodes/studio/sandboxes/s/workspace/f', '/nodes/studio/ports/3000', '/nodes/studio/ports/tcp/22/new',
    '/nodes/studio/volumes/v/f', '/nodes/studio/fs/home/f', '/nodes/studio/info.json']
  for (const path of paths) {
    for (const scope of ['read', 'run', 'admin'] as const) {
      if (allows(scope, scopeNeeded(path, true))) t.ok(allows(scope, scopeNeeded(path, false)), `${scope} may write ${path}, and read it`)
    }
  }
})
