// What a `changed` frame says, on its way: gathered (each path once, in its strongest kind),
// folded into folders past the bound (never past 1,000 paths), moved under another prefix.
import t from 'tap'
import { foldChanges, foldPaths, Gathered, moveChanges } from '../../tree/changed.js'
import { MAX_CHANGED } from '../../tree/wire.js'

const S_IFREG = 0o100000
const S_IFDIR = 0o040000

t.test('paths fold into their folders until few enough are left', async (t) => {
  const paths = Array.from({ length: 3000 }, (_, i) => `/volumes/v${i % 3}/dir${i}/file`)
  t.same(foldPaths(paths, MAX_CHANGED).sort(), ['/volumes/v0', '/volumes/v1', '/volumes/v2'])
  t.same(foldPaths(['/a/b', '/c'], 1), ['/'], 'down to the root if need be')
  t.same(foldPaths(['/a', '/a', '/b'], MAX_CHANGED), ['/a', '/b'], 'few enough already: kept, once each')
})

t.test('gathered: each path once, "anything below" over a name, a name over attributes, the later name wins', async (t) => {
  const gathered = new Gathered()
  gathered.add({ paths: [], attrs: ['/v/a', '/v/b', '/v/c'], names: [['/v/d', S_IFREG]] })
  gathered.add({ paths: ['/v/b'], names: [['/v/a', S_IFREG], ['/v/d', 0]] })
  gathered.add({ paths: [], attrs: ['/v/a', '/v/d'], names: [['/v/b', S_IFDIR]] })
  t.equal(gathered.size, 4)
  t.same(gathered.take(MAX_CHANGED), { paths: ['/v/b'], attrs: ['/v/c'], names: [['/v/d', 0], ['/v/a', S_IFREG]] })
  t.equal(gathered.size, 0, 'taking empties it')
  gathered.add({ paths: [], attrs: Array.from({ length: 1500 }, (_, i) => `/v/d${i % 3}/f${i}`) })
  gathered.fold(MAX_CHANGED)
  t.same(gathered.take(MAX_CHANGED), { paths: ['/v/d0', '/v/d1', '/v/d2'] }, 'folded in place past the bound, as what waits in an outbox is')
})

t.test('past the bound, every kind becomes "anything below" and folds', async (t) => {
  const many = { paths: ['/v/x/1'], attrs: Array.from({ length: 600 }, (_, i) => `/v/a/f${i}`), names: Array.from({ length: 600 }, (_, i): [string, number] => [`/v/b/f${i}`, S_IFREG]) }
  const folded = foldChanges(many, MAX_CHANGED)
  t.same(folded.paths.sort(), ['/v/a', '/v/b', '/v/x'])
  t.notOk(folded.attrs ?? folded.names, 'no kind is left that would say less than what happened')
  const few = { paths: [], attrs: ['/v/a'] }
  t.equal(foldChanges(few, MAX_CHANGED), few, 'within the bound: as it was')
})

t.test('moved under another prefix, what the move leaves out is dropped', async (t) => {
  const moved = moveChanges({ paths: ['/volumes'], attrs: ['/volumes/v/a', '/fs/x'], names: [['/volumes/v/b', 0]] },
    (p) => p.startsWith('/volumes') ? `/nodes/n${p}` : undefined)
  t.same(moved, { paths: ['/nodes/n/volumes'], attrs: ['/nodes/n/volumes/v/a'], names: [['/nodes/n/volumes/v/b', 0]] })
})
