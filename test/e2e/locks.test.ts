// Locks through a real mount (issue 12): fcntl and flock locks taken through the mount meet those
// of the node's own processes and of other processes of the mount, close lets them go, a waiting
// lock is interrupted by a signal, and SQLite writes from both sides at once without corruption.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { herdsUp, type Teardown } from './harness.js'

const up = await herdsUp(t)
const vol = join(up.nodeDir, 'volumes', 'locks')
await mkdir(vol)
const disk = join(up.home, 'nodes', up.name, 'volumes', 'locks')
await writeFile(join(vol, 'f'), 'x'.repeat(100))
const [viaMount, onNode] = [join(vol, 'f'), join(disk, 'f')]

/** Tries a lock without waiting in a new process: "yes" or "no". */
const tryLock = (file: string, how: 'EX' | 'SH', kind: 'lockf' | 'flock' = 'lockf'): string => spawnSync('python3', ['-c', `
import fcntl, sys
f = open(sys.argv[1], 'r+')
try:
    fcntl.${kind}(f, fcntl.LOCK_${how} | fcntl.LOCK_NB); print('yes')
except OSError:
    print('no')
`, file], { encoding: 'utf8', timeout: 20_000 }).stdout.trim()

/** A process that takes a lock, says "held", and keeps it until its stdin closes. */
async function holdLock (t: Teardown, file: string, how: 'EX' | 'SH', kind: 'lockf' | 'flock' = 'lockf'): Promise<ChildProcess> {
  const child = spawn('python3', ['-c', `
import fcntl, sys
f = open(sys.argv[1], 'r+'); fcntl.${kind}(f, fcntl.LOCK_${how}); print('held', flush=True); sys.stdin.read()
`, file], { stdio: ['pipe', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  await new Promise((resolve, reject) => { child.stdout!.once('data', resolve); child.once('exit', reject) })
  return child
}
const letGo = async (child: ChildProcess): Promise<void> => {
  child.stdin!.end()
  await new Promise((resolve) => child.once('exit', resolve))
}

t.test('an fcntl lock through the mount keeps out the node\'s processes and the mount\'s others; its end lets them in', async (t) => {
  const holder = await holdLock(t, viaMount, 'EX')
  t.equal(tryLock(onNode, 'SH'), 'no', 'a process on the node')
  t.equal(tryLock(viaMount, 'SH'), 'no', 'another process through the mount')
  await letGo(holder)
  t.equal(tryLock(onNode, 'EX'), 'yes', 'the holder gone, the node\'s process gets it')
  t.equal(tryLock(viaMount, 'EX'), 'yes')
})

t.test('a lock held on the node keeps the mount out; F_GETLK names it', async (t) => {
  const holder = await holdLock(t, onNode, 'SH')
  t.equal(tryLock(viaMount, 'EX'), 'no')
  t.equal(tryLock(viaMount, 'SH'), 'yes', 'read locks share')
  const getlk = spawnSync('python3', ['-c', `
import fcntl, struct, sys
f = open(sys.argv[1], 'r+')
lk = fcntl.fcntl(f, fcntl.F_GETLK, struct.pack('hhqqi', fcntl.F_WRLCK, 0, 0, 0, 0))
print({fcntl.F_RDLCK: 'read', fcntl.F_WRLCK: 'write', fcntl.F_UNLCK: 'none'}[struct.unpack('hhqqi', lk)[0]])
`, viaMount], { encoding: 'utf8' })
  t.equal(getlk.stdout, 'read\n', `the node's read lock is in the way of a write lock: ${getlk.stderr}`)
  await letGo(holder)
})

t.test('one process, two descriptors: its own locks do not keep it out (POSIX), and closing one lets all go', async (t) => {
  const r = spawnSync('python3', ['-c', `
import fcntl, subprocess, sys
a = open(sys.argv[1], 'r+'); b = open(sys.argv[1], 'r+')
fcntl.lockf(a, fcntl.LOCK_EX | fcntl.LOCK_NB)
fcntl.lockf(b, fcntl.LOCK_EX | fcntl.LOCK_NB); print('own')
probe = "import fcntl,sys\\ntry:\\n fcntl.lockf(open(sys.argv[1],'r+'), fcntl.LOCK_SH|fcntl.LOCK_NB); print('free')\\nexcept OSError: print('held')"
print(subprocess.run([sys.executable, '-c', probe, sys.argv[2]], capture_output=True, text=True).stdout.strip())
b.close()
print(subprocess.run([sys.executable, '-c', probe, sys.argv[2]], capture_output=True, text=True).stdout.strip())
`, viaMount, onNode], { encoding: 'utf8', timeout: 30_000 })
  t.equal(r.stdout, 'own\nheld\nfree\n', r.stderr)
})

t.test('a waiting lock ends at a signal (timeout), and the job it waited for is unharmed', async (t) => {
  const holder = await holdLock(t, onNode, 'EX')
  const started = Date.now()
  const waited = spawnSync('timeout', ['2', 'python3', '-c', 'import fcntl, sys; fcntl.lockf(open(sys.argv[1], "r+"), fcntl.LOCK_EX); print("got it")', viaMount], { encoding: 'utf8', timeout: 20_000 })
  t.equal(waited.status, 124, 'timeout ended it')
  t.ok(Date.now() - started < 4000, `within 4 s (${Date.now() - started} ms)`)
  t.equal(tryLock(onNode, 'SH', 'lockf'), 'no', 'the holder still holds')
  const waiter = spawn('python3', ['-c', 'import fcntl, sys; fcntl.lockf(open(sys.argv[1], "r+"), fcntl.LOCK_EX); print("got it", flush=True)', viaMount], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { waiter.kill('SIGKILL') })
  let said = ''
  waiter.stdout.on('data', (d: Buffer) => { said += d.toString() })
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(said, '', 'a waiter waits while the node holds it')
  await letGo(holder)
  await new Promise((resolve) => waiter.once('exit', resolve))
  t.equal(said, 'got it\n', 'and gets it when the node lets go')
})

t.test('flock through the mount meets flock on the node', async (t) => {
  const holder = await holdLock(t, viaMount, 'EX', 'flock')
  t.equal(tryLock(onNode, 'SH', 'flock'), 'no')
  t.equal(tryLock(viaMount, 'SH', 'flock'), 'no')
  await letGo(holder)
  t.equal(tryLock(onNode, 'EX', 'flock'), 'yes')
  const shell = spawnSync('sh', ['-c', `flock -n "${viaMount}" -c 'echo in'`], { encoding: 'utf8' })
  t.equal(shell.stdout, 'in\n', 'flock(1) through the mount')
})

const hasSqlite = spawnSync('sh', ['-c', 'command -v sqlite3']).status === 0
t.test('SQLite (rollback journal) written from the mount and the node at once: every row, integrity ok', { skip: !hasSqlite && 'no sqlite3' }, async (t) => {
  const db = 'shared.db'
  const sql = (dir: string, text: string): ReturnType<typeof spawnSync> => spawnSync('sqlite3', ['-cmd', '.timeout 20000', join(dir, db), text], { encoding: 'utf8', timeout: 120_000 })
  t.equal(sql(vol, 'PRAGMA journal_mode=DELETE; CREATE TABLE t (side TEXT, n INT);').status, 0)
  const inserts = (side: string): string => Array.from({ length: 150 }, (_, i) => `INSERT INTO t VALUES ('${side}', ${i});`).join('\n')
  const run = (dir: string, side: string): Promise<number | null> => new Promise((resolve) => {
    const child = spawn('sqlite3', ['-cmd', '.timeout 20000', join(dir, db)], { stdio: ['pipe', 'ignore', 'inherit'] })
    child.stdin.end(inserts(side) + '\n')
    child.once('exit', resolve)
  })
  t.same(await Promise.all([run(vol, 'mount'), run(disk, 'node')]), [0, 0], 'both writers finished')
  t.equal(sql(disk, 'SELECT side, count(*) FROM t GROUP BY side ORDER BY side;').stdout, 'mount|150\nnode|150\n', 'every row of both, on the node')
  t.equal(sql(vol, 'SELECT count(*) FROM t; PRAGMA integrity_check;').stdout, '300\nok\n', 'and through the mount')
})
