// Handle numbers are reused after a wrap-around and never collide.
import t from 'tap'
import { HandleTable } from '../../tree/handles.js'

t.test('numbers wrap around before the wire limit and skip those in use', async (t) => {
  const table = new HandleTable<string>()
  const first = table.add('first')
  ;(table as unknown as { next: number }).next = 2 ** 31 - 1
  t.equal(table.add('last'), 2 ** 31 - 1)
  const wrapped = table.add('wrapped')
  t.not(wrapped, first, 'skips the number still open')
  t.ok(wrapped >= 1 && wrapped < 2 ** 31 - 1)
  t.equal(table.take(first), 'first')
  t.throws(() => table.must(first), { code: 'EBADF' })
})
