// The inode table of the libfuse3 adapter: paths follow renames, lookups are counted, removed names keep their path for open files.
import t from 'tap'
import { Inodes, ROOT } from '../../mount/inodes.js'

t.test('paths are built from names, and a rename moves everything below', async (t) => {
  const inodes = new Inodes()
  const a = inodes.remember(ROOT, 'a')
  const b = inodes.remember(a.id, 'b')
  const c = inodes.remember(b.id, 'c')
  t.equal(inodes.path(ROOT), '/')
  t.equal(inodes.path(c.id), '/a/b/c')
  inodes.moved(a.id, 'b', ROOT, 'z')
  t.equal(inodes.path(c.id), '/z/c')
  t.equal(inodes.find('/z/c'), c)
  t.equal(inodes.find('/a/b'), undefined)
})

t.test('the same name looked up twice is one inode with two lookups; forgetting both drops it', async (t) => {
  const inodes = new Inodes()
  const first = inodes.remember(ROOT, 'f')
  const again = inodes.remember(ROOT, 'f')
  t.equal(first, again)
  t.equal(first.lookups, 2)
  inodes.forget(first.id, 1)
  t.equal(inodes.get(first.id), first)
  inodes.forget(first.id, 1)
  t.equal(inodes.get(first.id), undefined)
  t.throws(() => inodes.path(first.id), { code: 'ESTALE' })
  t.not(inodes.remember(ROOT, 'f').id, first.id, 'a forgotten number is never reused')
})

t.test('a removed name keeps its last path for open handles, and a new file of that name is another inode', async (t) => {
  const inodes = new Inodes()
  const dir = inodes.remember(ROOT, 'd')
  const file = inodes.remember(dir.id, 'x')
  inodes.removed(dir.id, 'x')
  t.equal(file.parent, 0)
  t.equal(inodes.path(file.id), '/d/x')
  const other = inodes.remember(dir.id, 'x')
  t.not(other.id, file.id)
  inodes.moved(ROOT, 'd', ROOT, 'e')
  t.equal(inodes.path(file.id), '/d/x', 'the removed one stays where it was')
  t.equal(inodes.path(other.id), '/e/x')
})

t.test('renaming over a name removes what it held; renaming to itself changes nothing', async (t) => {
  const inodes = new Inodes()
  const a = inodes.remember(ROOT, 'a')
  const b = inodes.remember(ROOT, 'b')
  inodes.moved(ROOT, 'a', ROOT, 'a')
  t.equal(inodes.path(a.id), '/a')
  inodes.moved(ROOT, 'a', ROOT, 'b')
  t.equal(inodes.path(a.id), '/b')
  t.equal(b.parent, 0)
  t.equal(inodes.child(ROOT, 'b'), a)
})

t.test('under() walks an inode and everything below it', async (t) => {
  const inodes = new Inodes()
  const a = inodes.remember(ROOT, 'a')
  inodes.remember(a.id, 'b')
  inodes.remember(a.id, 'c')
  inodes.remember(ROOT, 'z')
  t.same([...inodes.under('/a')].map((n) => inodes.path(n.id)).sort(), ['/a', '/a/b', '/a/c'])
  t.same([...inodes.under('/nope')], [])
})
