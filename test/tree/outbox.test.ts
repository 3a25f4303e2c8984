// A change notice that waits is folded into its folders, never past 1,000 paths.
import t from 'tap'
import { foldPaths } from '../../tree/outbox.js'

t.test('paths fold into their folders until few enough are left', async (t) => {
  const paths = Array.from({ length: 3000 }, (_, i) => `/volumes/v${i % 3}/dir${i}/file`)
  t.same(foldPaths(paths).sort(), ['/volumes/v0', '/volumes/v1', '/volumes/v2'])
  t.same(foldPaths(['/a/b', '/c'], 1), ['/'], 'down to the root if need be')
  t.same(foldPaths(['/a', '/a', '/b']), ['/a', '/b'], 'few enough already: kept, once each')
})
