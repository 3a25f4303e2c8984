// The libfuse3 adapter's record locks (mount/lowlevel.ts) over a LocalTree on a real folder: a close(2)
// lets go of every lock its process holds on the file, even one the node took as an interrupt crossed it.
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { HerdsError } from '../../tree/errno.js'
import { LocalTree } from '../../tree/local.js'
import type { Tree } from '../../tree/tree.js'
import { loadBinding } from '../../mount/native.js'
import { mountLowLevel } from '../../mount/lowlevel.js'
import { tempDir, unmountAtTeardown } from '../e2e/harness.js'

let loads = true
try { loadBinding() } catch { loads = false }

t.test('a lock the node took as its waiter was interrupted goes at the process\'s next close', { skip: (!loads || process.platform !== 'linux') && 'needs the libfuse3 binding on Linux' }, async (t) => {
  const root = tempDir(t)
  const disk = join(root, 'disk')
  const mnt = join(root, 'mnt')
  mkdirSync(disk)
  mkdirSync(mnt)
  writeFileSync(join(disk, 'f'), 'x'.repeat(100))
  const local = new LocalTree(disk)
  let waiting!: () => void
  const waited = new Promise<void>((resolve) => { waiting = resolve })
  // A waiting lock whose cancel crosses the node's answer: the node holds it, the caller hears it was cancelled.
  const tree = new Proxy(local, {
    get (target, prop, receiver) {
      if (prop !== 'setlk') return Reflect.get(target, prop, receiver)
      return async (...args: Parameters<Tree['setlk']>) => {
        const [path, fh, owner, type, start, length, wait, ctx] = args
        if (!wait) return await target.setlk(path, fh, owner, type, start, length, false)
        waiting()
        await new Promise<void>((resolve) => ctx?.signal?.addEventListener('abort', () => resolve(), { once: true }))
        await target.setlk(path, fh, owner, type, start, length, false)
        throw new HerdsError('ECANCELED', 'cancelled')
      }
    },
  })
  const mounted = mountLowLevel(tree, mnt)
  unmountAtTeardown(t, mnt)
  t.teardown(() => mounted.unmount())
  const child = spawn('python3', ['-c', `
import fcntl, sys
keep = open(sys.argv[1], 'r+'); other = open(sys.argv[1], 'r+')
try:
    fcntl.lockf(keep, fcntl.LOCK_EX)
except KeyboardInterrupt:
    print('interrupted', flush=True)
other.close()
print('closed', flush=True)
sys.stdin.read()
`, join(mnt, 'f')], { stdio: ['pipe', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  let out = ''
  const said = (what: string): Promise<void> => new Promise((resolve, reject) => {
    const look = (): void => { if (out.includes(what)) resolve() }
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); look() })
    child.once('exit', () => reject(new Error(`exited before "${what}": ${out}`)))
    look()
  })
  await waited
  child.kill('SIGINT')
  await said('closed')
  t.match(out, /interrupted/)
  const free = spawnSync('python3', ['-c', `
import fcntl, sys
f = open(sys.argv[1], 'r+')
try:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB); print('yes')
except OSError:
    print('no')
`, join(disk, 'f')], { encoding: 'utf8' }).stdout.trim()
  t.equal(free, 'yes', 'closing another of its files let the lock go, as close(2) does')
  child.stdin!.end()
})
