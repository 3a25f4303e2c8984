// herds up checks its mountpoint before it starts anything (issue 11, point 4).
import { writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { herdsUp, spawnHerds, tempDir } from '../e2e/harness.js'

t.test('a mountpoint with files in it: refused at once, nothing started', async (t) => {
  const root = tempDir(t)
  const dir = join(root, 'full')
  mkdirSync(dir)
  writeFileSync(join(dir, 'notes.txt'), 'mine')
  const up = spawnHerds(t, ['up', '--port', '0', '--mount', dir], join(root, 'home'))
  t.equal(await up.exited, 1)
  t.match(up.output(), new RegExp(`herds: ${dir} is not empty \\(1 entries\\)`))
  t.notMatch(up.output(), /host|node|connected/, 'no host or node was started first')
})

t.test('a mountpoint that is already a Herds mount: says so, and by which process', async (t) => {
  const first = await herdsUp(t, 'first')
  const second = spawnHerds(t, ['up', '--port', '0', '--name', 'second', '--mount', first.mountpoint], join(tempDir(t), 'home'))
  t.equal(await second.exited, 1)
  t.match(second.output(), new RegExp(`is already mounted: a Herds mount \\(pid ${first.proc.child.pid}: herds up `))
  t.match(second.output(), /fusermount -u /)
  t.notMatch(second.output(), /host\s+ws|connected/, 'no host or node was started first')
  t.equal((await import('node:fs')).readdirSync(join(first.mountpoint, 'nodes')).join(), 'first', 'the first mount carries on')
})
