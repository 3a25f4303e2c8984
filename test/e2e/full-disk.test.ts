// A volume whose disk fills up, for real (a 4 MiB tmpfs), through a real mount: the mount answers a
// write once it is on its way, so the node's ENOSPC must still reach the writer, at a later write or at close.
import { execFileSync, spawnSync } from 'node:child_process'
import { join } from 'node:path'
import t from 'tap'
import { spawnHerds, tempDir, tmpfsAt, unmountAtTeardown } from './harness.js'

const root = tempDir(t)
const home = join(root, 'home')
const mnt = join(root, 'mnt')
const small = join(home, 'nodes', 'studio', 'volumes', 'small')
tmpfsAt(t, small, 'size=4m')
unmountAtTeardown(t, mnt)
const up = spawnHerds(t, ['up', '--port', '0', '--name', 'studio', '--mount', mnt], home)
await up.waitFor(/Ctrl-C to stop/)
const volume = join(mnt, 'nodes', 'studio', 'volumes', 'small')

t.test('dd of 8 MiB onto 4 MiB fails with ENOSPC, and the file holds what fitted', async (t) => {
  const dd = spawnSync('dd', ['if=/dev/zero', `of=${join(volume, 'big')}`, 'bs=1M', 'count=8'], { encoding: 'utf8', timeout: 30_000 })
  t.not(dd.status, 0, 'dd fails')
  t.match(dd.stderr, /No space left on device/)
  const size = Number(execFileSync('stat', ['-c', '%s', join(small, 'big')], { encoding: 'utf8' }))
  t.ok(size > 0 && size <= 4 * 1024 * 1024, `the node's file has ${size} bytes, no more than fitted`)
  execFileSync('rm', [join(volume, 'big')])
})

t.test('a program that writes 1 MiB at a time hears of ENOSPC at a write or at close, never not at all', async (t) => {
  const script = `
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
where = 'nowhere'
try:
    for i in range(8):
        os.write(fd, b'x' * 1048576)
except OSError as e:
    where = 'write' if e.errno == errno.ENOSPC else 'write ' + str(e)
try:
    os.close(fd)
except OSError as e:
    where = where if where != 'nowhere' else ('close' if e.errno == errno.ENOSPC else 'close ' + str(e))
print(where)
`
  const out = execFileSync('python3', ['-c', script, join(volume, 'py')], { encoding: 'utf8', timeout: 30_000 }).trim()
  t.ok(out === 'write' || out === 'close', `ENOSPC was told at: ${out}`)
  execFileSync('rm', [join(volume, 'py')])
})

t.test('once there is room again, a file written whole is whole on the node', async (t) => {
  execFileSync('dd', ['if=/dev/urandom', `of=${join(root, 'three')}`, 'bs=1M', 'count=3', 'status=none'])
  execFileSync('cp', [join(root, 'three'), join(volume, 'three')])
  t.equal(execFileSync('cmp', [join(root, 'three'), join(small, 'three')], { encoding: 'utf8' }), '', 'same bytes')
})
