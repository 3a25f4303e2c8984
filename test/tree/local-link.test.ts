// A local tree's hard links, inode numbers, sub-millisecond times and modes as given (issue 12),
// on a real temporary directory; and the wire's ENAMETOOLONG for a name past 255 bytes.
import { lstatSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { LocalTree } from '../../tree/local.js'
import { timeOf } from '../../tree/tree.js'
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

t.test('times are set and read to the nanosecond; a time left out stays as it was', async (t) => {
  writeFileSync(join(root, 'timed'), 'x')
  await tree.utimens('/timed', { sec: 1_000_000_000, nsec: 987_654_321 }, { sec: 1_000_000_000, nsec: 123_456_789 })
  const s = statSync(join(root, 'timed'), { bigint: true })
  t.equal(s.mtimeNs, 1_000_000_000_123_456_789n, 'mtime exact on the disk')
  t.equal(s.atimeNs, 1_000_000_000_987_654_321n, 'atime exact on the disk')
  const got = await tree.getattr('/timed')
  t.same(timeOf(got, 'mtime'), { sec: 1_000_000_000, nsec: 123_456_789 }, 'getattr gives them back exactly')
  t.same(timeOf(got, 'atime'), { sec: 1_000_000_000, nsec: 987_654_321 })
  await tree.utimens('/timed', null, { sec: 1_500_000_000, nsec: 1 })
  const after = statSync(join(root, 'timed'), { bigint: true })
  t.equal(after.mtimeNs, 1_500_000_000_000_000_001n)
  t.equal(after.atimeNs, 1_000_000_000_987_654_321n, 'the access time, left out, is as it was')
  await tree.utimens('/timed', { sec: -1, nsec: 500_000_000 }, null)
  t.same(timeOf(await tree.getattr('/timed'), 'atime'), { sec: -1, nsec: 500_000_000 }, 'before 1970 too')
  symlinkSync('timed', join(root, 'timed-link'))
  await tree.utimens('/timed-link', { sec: 1_200_000_000, nsec: 5 }, { sec: 1_200_000_000, nsec: 6 })
  t.equal(lstatSync(join(root, 'timed-link'), { bigint: true }).mtimeNs, 1_200_000_000_000_000_006n, 'a link\'s own times')
  t.equal(statSync(join(root, 'timed'), { bigint: true }).mtimeNs, 1_500_000_000_000_000_001n, 'not its target\'s')
})

t.test('create and mkdir keep the mode as given, whatever the node\'s umask', async (t) => {
  const before = process.umask(0o077)
  t.teardown(() => { process.umask(before) })
  await tree.release('/open', (await tree.create('/open', 0o777)).fh)
  t.equal(statSync(join(root, 'open')).mode & 0o7777, 0o777)
  await tree.mkdir('/dir', 0o775)
  t.equal(statSync(join(root, 'dir')).mode & 0o7777, 0o775)
  // A file another client made a moment before is opened, and keeps its own mode.
  writeFileSync(join(root, 'theirs'), 'x', { mode: 0o600 })
  await tree.release('/theirs', (await tree.create('/theirs', 0o777)).fh)
  t.equal(statSync(join(root, 'theirs')).mode & 0o7777, 0o600)
})

t.test('a name past 255 bytes is ENAMETOOLONG on the wire; a long path below a volume passes', async (t) => {
  t.throws(() => parseArgs('getattr', ['/' + 'n'.repeat(256)]), { code: 'ENAMETOOLONG' })
  t.throws(() => parseArgs('getattr', ['/' + 'a/'.repeat(3000)]), { code: 'ENAMETOOLONG' })
  const deep = '/nodes/studio/volumes/v' + '/d'.repeat(2000)
  t.same(parseArgs('getattr', [deep]), [deep], `${deep.length} bytes from the namespace's root`)
})

t.test('a time to set on the wire: exact seconds and nanoseconds, null to leave it, or ms from an older peer', async (t) => {
  t.same(parseArgs('utimens', ['/a', { sec: 5, nsec: 999_999_999 }, null]), ['/a', { sec: 5, nsec: 999_999_999 }, null])
  t.same(parseArgs('utimens', ['/a', 1500.25, 0]), ['/a', { sec: 1, nsec: 500_250_000 }, { sec: 0, nsec: 0 }], 'ms as a double')
  t.throws(() => parseArgs('utimens', ['/a', { sec: 1, nsec: 1_000_000_000 }, null]), { code: 'EINVAL' }, 'a nanosecond count of a whole second')
  t.throws(() => parseArgs('utimens', ['/a', { sec: 1.5, nsec: 0 }, null]), { code: 'EINVAL' })
  t.throws(() => parseArgs('utimens', ['/a', Infinity, null]), { code: 'EINVAL' })
})
