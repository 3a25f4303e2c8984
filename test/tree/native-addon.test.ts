// The tree/native addon's own argument checks: whatever JavaScript hands it, a
// bad argument is a thrown error, never a call made with a number or a name it
// was not given (NaN, a fraction, a string cut short).
import { lstatSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { tempDir } from '../e2e/harness.js'

const ADDON = fileURLToPath(new URL('../../tree/native/build/Release/herds_at.node', import.meta.url))
const { call } = createRequire(import.meta.url)(ADDON) as { call: (...args: unknown[]) => Promise<unknown> }
const root = tempDir(t)
writeFileSync(join(root, 'f'), 'x')

t.test('an op or a number that is NaN, a fraction or out of range is a RangeError', async (t) => {
  for (const op of [NaN, 0.5, -1, 6, Infinity]) {
    t.throws(() => call(op, join(root, 'made'), '', 0o10644), RangeError, `op ${op}`)
  }
  t.throws(() => lstatSync(join(root, 'made')), { code: 'ENOENT' }, 'nothing was made')
  t.throws(() => call(0, join(root, 'nan'), '', NaN), RangeError, 'a mode of NaN is not 0')
  t.throws(() => lstatSync(join(root, 'nan')), { code: 'ENOENT' }, 'no regular file made with mode 0')
  t.throws(() => call(1, join(root, 'f'), 'user.x', NaN), RangeError, 'a size of NaN')
  t.throws(() => call(1, join(root, 'f'), 'user.x', 1.5), RangeError, 'a fractional size')
  t.throws(() => call(2, join(root, 'f'), 'user.x', 2 ** 32, Buffer.from('a')), RangeError, 'flags past 32 bits')
})

t.test('a name too long for its buffer is refused, not cut short at a character', async (t) => {
  // 256 bytes: 254 fit before the two-byte letter; a copy that stops there must not pass as the whole name.
  const name = 'user.' + 'n'.repeat(249) + '\u00e9'
  t.equal(Buffer.byteLength(name), 256)
  t.throws(() => call(2, join(root, 'f'), name, 0, Buffer.from('a')), TypeError)
  t.equal(await call(3, join(root, 'f'), '', 0), 0, 'no attribute was set under a shorter name')
})
