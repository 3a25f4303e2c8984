// The node's watch on its own: changes reported as tree paths, by kind, what the tree does not show left out,
// and a flood of renames let go (the root reported as changed) instead of followed, then watched again.
import { execFileSync, spawn } from 'node:child_process'
import { appendFileSync, mkdirSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import t from 'tap'
import { watchRoots } from '../../nodes/watch.js'
import { changedPaths, type Changed } from '../../tree/changed.js'
import { FLOOD_JS } from '../e2e/flood.js'
import { tempDir } from '../e2e/harness.js'

/** Resolves when `check` holds, polling; rejects after `ms`. */
async function until (check: () => boolean, ms = 30_000): Promise<void> {
  const started = Date.now()
  while (!check()) {
    if (Date.now() - started > ms) throw new Error('not in time')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

t.test('changes come as tree paths; a sandbox\'s files outside its workspace are not watched', async (t) => {
  const dir = tempDir(t)
  mkdirSync(join(dir, 'box', 'workspace'), { recursive: true })
  mkdirSync(join(dir, 'box', 'home'))
  const seen: string[] = []
  const watching = watchRoots([{ dir, at: '/sandboxes', inside: 'workspace' }], (changed) => seen.push(...changedPaths(changed)))
  t.teardown(() => watching.close())
  // The thread's first scan has no event to show for it: write until the watch hears.
  await until(() => { writeFileSync(join(dir, 'box', 'workspace', 'a.txt'), 'x'); return seen.includes('/sandboxes/box/workspace/a.txt') })
  writeFileSync(join(dir, 'box', 'home', 'secret'), 'x')
  writeFileSync(join(dir, 'box', 'workspace', 'b.txt'), 'x')
  await until(() => seen.includes('/sandboxes/box/workspace/b.txt'))
  t.notOk(seen.some((p) => p.includes('/home')), 'home/ is not in the tree, so not reported')
})

t.test('a rename flood: the root is let go and reported as changed meanwhile, and the watch comes back', async (t) => {
  const dir = tempDir(t)
  mkdirSync(join(dir, 'flood'))
  writeFileSync(join(dir, 'flood.js'), FLOOD_JS)
  const seen: string[] = []
  const floods: number[] = []
  const watching = watchRoots([{ dir, at: '/volumes' }], (changed) => seen.push(...changedPaths(changed)), { onFlood: (_at, restMs) => floods.push(restMs) })
  t.teardown(() => watching.close())
  await until(() => { writeFileSync(join(dir, 'before.txt'), 'x'); return seen.includes('/volumes/before.txt') })

  const delay = monitorEventLoopDelay({ resolution: 10 })
  delay.enable()
  const flood = spawn(process.execPath, [join(dir, 'flood.js'), '4', '500'], { cwd: join(dir, 'flood'), stdio: 'ignore', env: { ...process.env, NODE_OPTIONS: '' } })
  t.teardown(() => { flood.kill('SIGKILL') })
  await new Promise((resolve) => flood.on('exit', resolve))
  delay.disable()
  t.comment(`this thread's event loop delay during the flood: max ${(delay.max / 1e6).toFixed(0)} ms, mean ${(delay.mean / 1e6).toFixed(1)} ms`)

  t.ok(floods.length >= 1, `the flood was noticed (${floods.length} times, rests ${floods.join(', ')} ms)`)
  t.ok(floods.every((ms, i) => i === 0 || ms >= floods[i - 1]), 'each flood soon after another rests longer')
  t.ok(seen.filter((p) => p === '/volumes').length >= 2, 'meanwhile the root is reported as changed, again and again')

  // After its rest, the watch is back: one change is reported as itself, not as the root.
  await until(() => { writeFileSync(join(dir, 'after.txt'), String(Date.now())); return seen.includes('/volumes/after.txt') }, 90_000)
  t.pass('changes are heard one by one again')
})

t.test('a folder made, filled or renamed after the start is followed under its own name', async (t) => {
  const dir = tempDir(t)
  const seen: string[] = []
  const watching = watchRoots([{ dir, at: '/volumes' }], (changed) => seen.push(...changedPaths(changed)))
  t.teardown(() => watching.close())
  await until(() => { writeFileSync(join(dir, 'ready.txt'), 'x'); return seen.includes('/volumes/ready.txt') })
  // Made with files in it at once: the new folder stands for all of them.
  mkdirSync(join(dir, 'a', 'b'), { recursive: true })
  writeFileSync(join(dir, 'a', 'b', 'early.txt'), 'x')
  await until(() => seen.includes('/volumes/a'))
  await until(() => { writeFileSync(join(dir, 'a', 'b', 'later.txt'), String(Date.now())); return seen.includes('/volumes/a/b/later.txt') })
  t.pass('a file in a folder made after the start is reported as itself')
  renameSync(join(dir, 'a'), join(dir, 'z'))
  await until(() => seen.includes('/volumes/z'))
  seen.length = 0
  await until(() => { writeFileSync(join(dir, 'z', 'b', 'moved.txt'), String(Date.now())); return seen.includes('/volumes/z/b/moved.txt') })
  t.notOk(seen.some((p) => p.startsWith('/volumes/a/')), 'nothing is reported under the name the folder had')
  rmSync(join(dir, 'z'), { recursive: true })
  await until(() => seen.includes('/volumes/z'))
})

t.test('a folder that cannot be watched (its path too long) is reported as changed, and the rest is watched as before', async (t) => {
  const dir = tempDir(t)
  // Deeper than PATH_MAX from /, made one step at a time (no single call takes a path that long).
  t.teardown(() => { execFileSync('rm', ['-rf', dir]) }) // rm walks by descriptor; Node's rmSync cannot reach that deep
  execFileSync('sh', ['-c', 'cd "$1" && mkdir deep && cd deep && i=0; while [ $i -lt 40 ]; do n=$(printf "%0120d" $i); mkdir $n && cd $n; i=$((i+1)); done', 'sh', dir])
  const errors: string[] = []
  const seen: string[] = []
  const watching = watchRoots([{ dir, at: '/volumes' }], (changed) => seen.push(...changedPaths(changed)), { onError: (err) => errors.push(err.message) })
  t.teardown(() => watching.close())
  await until(() => errors.length > 0)
  t.match(errors[0], /could not watch/, 'the log says which folders are not watched')
  await until(() => seen.some((p) => p.startsWith('/volumes/deep/') && p.length > 4000))
  t.pass('the deepest folders are reported as changed without an event')
  await until(() => { writeFileSync(join(dir, 'near.txt'), String(Date.now())); return seen.includes('/volumes/near.txt') })
  t.notOk(seen.includes('/volumes'), 'the root as a whole is never reported as changed')
})

t.test('changes come by kind: a name with what it names now, a file\'s own content or times as attributes alone', async (t) => {
  const dir = tempDir(t)
  mkdirSync(join(dir, 'sub'))
  const heard: Changed[] = []
  const watching = watchRoots([{ dir, at: '/volumes' }], (changed) => heard.push(changed))
  t.teardown(() => watching.close())
  const named = (path: string, type: number): boolean => heard.some((c) => c.names?.some(([p, ty]) => p === path && ty === type))
  const attrs = (path: string): boolean => heard.some((c) => c.attrs?.includes(path))
  await until(() => { writeFileSync(join(dir, 'sub', 'ready.txt'), 'x'); return changedPaths(heard.at(-1) ?? { paths: [] }).length > 0 })
  writeFileSync(join(dir, 'sub', 'a.txt'), 'one')
  await until(() => named('/volumes/sub/a.txt', 0o100000))
  t.pass('a new file: its name, naming a regular file')
  heard.length = 0
  appendFileSync(join(dir, 'sub', 'a.txt'), 'two')
  await until(() => attrs('/volumes/sub/a.txt'))
  utimesSync(join(dir, 'sub'), new Date(1e12), new Date(1e12))
  await until(() => attrs('/volumes/sub'))
  // (A folder's own event comes named as the folder, as if of a file in it: that name, not there, is said to name nothing.)
  t.notOk(heard.some((c) => c.paths.length > 0 || c.names?.some(([path, type]) => type !== 0 || path !== '/volumes/sub/sub')), 'content and times: nothing said of names, nor of what is below')
  mkdirSync(join(dir, 'sub', 'new'))
  rmSync(join(dir, 'sub', 'a.txt'))
  await until(() => named('/volumes/sub/new', 0o040000) && named('/volumes/sub/a.txt', 0))
  t.pass('a new folder is named as a folder, a removed file as nothing')
})

t.test('a folder put in the place of another (rename over it) is watched as the new one', async (t) => {
  const dir = tempDir(t)
  mkdirSync(join(dir, 'x'))
  mkdirSync(join(dir, 'y'))
  const heard: Changed[] = []
  const watching = watchRoots([{ dir, at: '/volumes' }], (changed) => heard.push(changed))
  t.teardown(() => watching.close())
  const seen = (path: string): boolean => heard.some((c) => changedPaths(c).includes(path))
  await until(() => { writeFileSync(join(dir, 'x', 'ready.txt'), String(Date.now())); return seen('/volumes/x/ready.txt') })
  rmSync(join(dir, 'x', 'ready.txt'))
  renameSync(join(dir, 'y'), join(dir, 'x'))
  await until(() => heard.some((c) => c.names?.some(([p, type]) => p === '/volumes/x' && type === 0o040000)))
  t.pass('its name is said to name a folder again')
  heard.length = 0
  await until(() => { writeFileSync(join(dir, 'x', 'inside.txt'), String(Date.now())); return seen('/volumes/x/inside.txt') })
  t.pass('a file written in it is reported')
})
