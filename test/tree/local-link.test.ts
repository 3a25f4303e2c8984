// A local tree's hard links, inode numbers, sub-millisecond times and modes as given (issue 12),
// on a real temporary directory; and the wire's ENAMETOOLONG for a name past 255 bytes.
import { lstatSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { LocalTree } from '../../tree/local.js'
import { parseArgs } from '../../tree/wire.js'
import { tempDir } from '../e2e/harness.js'

const root = tempDir(t)
const outside = tempDir(t)
writeFileSync(join(outside, 'secret'), 'do not link')
const tree = new LocalTree(root)

t.test('link makes a second name for a file: one inode, two links, both seen on the disk', async (t) => {
  writeFileSync(join(root, 'a'), 'shared')
  await tree.link('/a', '/b')
  t.equal(statSync(join(root, 'b')).ino, statSync(join(root, 'a')).ino)
  const [a, b] = [await tree.getattr('/a'), await tree.getattr('/b')]
  t.equal(a.nlink, 2)
  t.equal(a.ino, b.ino)
  t.equal(a.ino, statSync(join(root, 'a')).ino, 'the node\'s own inode number')
  await t.rejects(tree.link('/a', '/b'), { code: 'EEXIST' })
  await t.rejects(tree.link('/', '/c'), { code: 'EPERM' })
})

t.test('a link never reaches a file outside the tree, through a folder link on either side', async (t) => {
  symlinkSync(outside, join(root, 'out'))
  await t.rejects(tree.link('/out/secret', '/stolen'), { code: 'EACCES' }, 'from through a link out')
  await t.rejects(tree.link('/a', '/out/planted'), { code: 'EACCES' }, 'to through a link out')
  t.equal(statSync(join(outside, 'secret')).nlink, 1, 'the outside file got no second name')
  t.throws(() => lstatSync(join(outside, 'planted')))
  // A link to a symbolic link is a link to the link itself, never to what it points at.
  symlinkSync(join(outside, 'secret'), join(root, 'sl'))
  await tree.link('/sl', '/sl2')
  t.ok(lstatSync(join(root, 'sl2')).isSymbolicLink())
  t.equal(statSync(join(outside, 'secret')).nlink, 1)
})

t.test('times carry their fraction of a millisecond both ways', async (t) => {
  writeFileSync(join(root, 'timed'), 'x')
  await tree.utimens('/timed', 1_000_000_000_987.654321, 1_000_000_000_123.456789)
  const s = statSync(join(root, 'timed'), { bigint: true })
  // A double in seconds (Node's utimes) carries about 0.1 µs at this size.
  t.ok(Math.abs(Number(s.mtimeNs - 1_000_000_000_123_456_789n)) < 1000, `mtime ${s.mtimeNs} within 1 µs`)
  t.ok(Math.abs(Number(s.atimeNs - 1_000_000_000_987_654_321n)) < 1000, `atime ${s.atimeNs} within 1 µs`)
  const got = await tree.getattr('/timed')
  t.ok(Math.abs(got.mtimeMs - Number(s.mtimeNs) / 1e6) < 1e-3, 'getattr gives the nanoseconds as a fraction')
  t.not(got.mtimeMs % 1, 0)
})

t.test('create and mkdir keep the mode as given, whatever the node\'s umask', async (t) => {
  const before = process.umask(0o077)
  t.teardown(() => { process.umask(before) })
  await tree.release('/open', await tree.create('/open', 0o777))
  t.equal(statSync(join(root, 'open')).mode & 0o7777, 0o777)
  await tree.mkdir('/dir', 0o775)
  t.equal(statSync(join(root, 'dir')).mode & 0o7777, 0o775)
  // A file another client made a moment before is opened, and keeps its own mode.
  writeFileSync(join(root, 'theirs'), 'x', { mode: 0o600 })
  await tree.release('/theirs', await tree.create('/theirs', 0o777))
  t.equal(statSync(join(root, 'theirs')).mode & 0o7777, 0o600)
})

t.test('a name past 255 bytes is ENAMETOOLONG on the wire; a long path below a volume passes', async (t) => {
  t.throws(() => parseArgs('getattr', ['/' + 'n'.repeat(256)]), { code: 'ENAMETOOLONG' })
  t.throws(() => parseArgs('getattr', ['/' + 'a/'.repeat(3000)]), { code: 'ENAMETOOLONG' })
  const deep = '/nodes/studio/volumes/v' + '/d'.repeat(2000)
  t.same(parseArgs('getattr', [deep]), [deep], `${deep.length} bytes from the namespace's root`)
})
