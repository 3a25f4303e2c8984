// The node's record locks for a mount's lock owners (tree/locks.ts), through a LocalTree on a real
// folder: owners meet each other and the node's own processes; an owner does not meet itself;
// close and release let go; a waiting lock is interrupted; the owners held at once are bounded.
import { spawn, spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { LocalTree } from '../../tree/local.js'
import { MAX_LOCK_OWNERS, MAX_LOCK_OWNERS_PER_CONNECTION } from '../../tree/locks.js'
import { O_RDWR } from '../../tree/tree.js'
import { tempDir } from '../e2e/harness.js'

const root = tempDir(t)
writeFileSync(join(root, 'db'), 'x'.repeat(100))
const tree = new LocalTree(root)
const opened: number[] = []
const openDb = async (): Promise<number> => { const fh = await tree.open('/db', O_RDWR); opened.push(fh); return fh }
t.teardown(async () => { for (const fh of opened) await tree.release('/db', fh).catch(() => {}) })

/** Can a process of the node's own take this lock now (fcntl, not waiting)? */
const nodeCanLock = (kind: 'read' | 'write', start = 0, length = 0): boolean => spawnSync('python3', ['-c', `
import fcntl, sys
f = open(sys.argv[1], 'r+')
try:
    fcntl.lockf(f, fcntl.LOCK_${kind === 'read' ? 'SH' : 'EX'} | fcntl.LOCK_NB, ${length}, ${start}); print('yes')
except OSError:
    print('no')
`, join(root, 'db')], { encoding: 'utf8' }).stdout === 'yes\n'

t.test('two owners meet, and the node\'s own processes meet them; an owner never meets itself', async (t) => {
  const [a, b] = [await openDb(), await openDb()]
  await tree.setlk('/db', a, 'owner-a', 'write', 0, 10, false)
  await t.rejects(tree.setlk('/db', b, 'owner-b', 'read', 5, 1, false), { code: 'EAGAIN' }, 'another owner')
  t.same(await tree.getlk('/db', b, 'owner-b', 'read', 0, 0), { type: 'write', start: 0, length: 10, pid: 0 }, 'getlk names it')
  await tree.setlk('/db', b, 'owner-a', 'write', 0, 20, false) // the same owner through another handle: one set of locks
  t.equal(await tree.getlk('/db', a, 'owner-a', 'write', 0, 0), null, 'its own locks are not in its way')
  t.notOk(nodeCanLock('read', 0, 1), 'a process on the node is kept out')
  t.ok(nodeCanLock('write', 50, 10), 'past the range it is not')
  await tree.setlk('/db', a, 'owner-a', 'unlock', 0, 0, false)
  t.ok(nodeCanLock('write'), 'unlocking the whole file lets all of it go')
  await tree.setlk('/db', b, 'owner-b', 'read', 0, 0, false)
  await tree.setlk('/db', a, 'owner-c', 'read', 0, 0, false)
  t.notOk(nodeCanLock('write'), 'two read locks keep a writer out')
  t.ok(nodeCanLock('read'), 'but not a reader')
  await tree.setlk('/db', b, 'owner-b', 'unlock', 0, 0, false)
  await tree.setlk('/db', a, 'owner-c', 'unlock', 0, 0, false)
})

t.test('a lock held by a process on the node keeps an owner out; a waiting one gets it when it goes', async (t) => {
  const fh = await openDb()
  const holder = spawn('python3', ['-c', `
import fcntl, sys, time
f = open(sys.argv[1], 'r+'); fcntl.lockf(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(float(sys.argv[2]))
`, join(root, 'db'), '0.5'], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { holder.kill('SIGKILL') })
  await new Promise((resolve) => holder.stdout.once('data', resolve))
  await t.rejects(tree.setlk('/db', fh, 'owner-w', 'write', 0, 0, false), { code: 'EAGAIN' })
  const started = Date.now()
  await tree.setlk('/db', fh, 'owner-w', 'write', 0, 0, true)
  t.ok(Date.now() - started >= 200, `it waited for the holder (${Date.now() - started} ms)`)
  t.notOk(nodeCanLock('read'))
  await tree.setlk('/db', fh, 'owner-w', 'unlock', 0, 0, false)
})

t.test('a waiting lock ends with EINTR when its caller gives up, and takes nothing', async (t) => {
  const fh = await openDb()
  await tree.setlk('/db', fh, 'owner-x', 'write', 0, 0, false)
  const other = await openDb()
  const controller = new AbortController()
  setTimeout(() => controller.abort(), 150)
  await t.rejects(tree.setlk('/db', other, 'owner-y', 'write', 0, 0, true, { signal: controller.signal }), { code: 'EINTR' })
  await tree.setlk('/db', fh, 'owner-x', 'unlock', 0, 0, false)
  t.ok(nodeCanLock('write'), 'the waiter holds nothing')
})

t.test('releasing the last handle an owner locked through drops its locks', async (t) => {
  const fh = await tree.open('/db', O_RDWR)
  await tree.setlk('/db', fh, 'owner-r', 'write', 0, 0, false)
  t.notOk(nodeCanLock('read'))
  await tree.release('/db', fh)
  t.ok(nodeCanLock('write'), 'a mount gone, a connection lost: its locks are gone')
})

t.test('flock: the handle\'s description holds it, and it meets the node\'s flock', async (t) => {
  const [a, b] = [await openDb(), await openDb()]
  await tree.flock('/db', a, 'exclusive', false)
  await t.rejects(tree.flock('/db', b, 'shared', false), { code: 'EAGAIN' })
  const nodeFlock = spawnSync('python3', ['-c', 'import fcntl, sys\ntry:\n    fcntl.flock(open(sys.argv[1]), fcntl.LOCK_SH | fcntl.LOCK_NB); print("yes")\nexcept OSError:\n    print("no")', join(root, 'db')], { encoding: 'utf8' })
  t.equal(nodeFlock.stdout, 'no\n')
  await tree.flock('/db', a, 'unlock', false)
  await tree.flock('/db', b, 'shared', false)
  await tree.flock('/db', b, 'unlock', false)
})

t.test(`attacker: at most ${MAX_LOCK_OWNERS} owners hold descriptions at once; past it ENOLCK, and a let-go owner makes room`, async (t) => {
  const fh = await openDb()
  for (let i = 0; i < MAX_LOCK_OWNERS; i++) await tree.setlk('/db', fh, `flood-${i}`, 'read', i, 1, false)
  await t.rejects(tree.setlk('/db', fh, 'one-more', 'read', 0, 1, false), { code: 'ENOLCK' })
  await tree.setlk('/db', fh, 'flood-0', 'unlock', 0, 0, false)
  await tree.setlk('/db', fh, 'one-more', 'read', 0, 1, false)
  await tree.release('/db', fh)
  opened.splice(opened.indexOf(fh), 1)
  t.ok(nodeCanLock('write'), 'the release let every flood owner go')
})

t.test('a handle released while a lock through it is on its way lets the lock go with its last handle', async (t) => {
  const [held, racing] = [await openDb(), await openDb()]
  await tree.setlk('/db', held, 'owner-r', 'write', 0, 10, false)
  // The release lands while the lock call still looks the file up: the handle it came through is gone.
  const late = tree.setlk('/db', racing, 'owner-r', 'write', 20, 10, false).then(() => 'locked', (err: { code?: string }) => err.code)
  await tree.release('/db', racing)
  t.equal(await late, 'EBADF', 'the lock through the released handle is refused')
  await tree.release('/db', held)
  t.ok(nodeCanLock('write'), 'no lock is left behind once the owner\'s last handle is released')
})

t.test(`attacker: one connection holds at most ${MAX_LOCK_OWNERS_PER_CONNECTION} owners' descriptions; another still gets its own`, async (t) => {
  const fh = await openDb()
  for (let i = 0; i < MAX_LOCK_OWNERS_PER_CONNECTION; i++) await tree.setlk('/db', fh, `greedy:${i}`, 'read', i, 1, false)
  await t.rejects(tree.setlk('/db', fh, 'greedy:one-more', 'read', 0, 1, false), { code: 'ENOLCK' })
  await tree.setlk('/db', fh, 'modest:1', 'read', 0, 1, false)
  await tree.release('/db', fh)
  opened.splice(opened.indexOf(fh), 1)
  const again = await openDb()
  await tree.setlk('/db', again, 'greedy:after', 'read', 0, 1, false)
  t.pass('released, the connection has room again')
  await tree.setlk('/db', again, 'greedy:after', 'unlock', 0, 0, false)
})
