import t from 'tap'
import { errnoNumber, HerdsError, toHerdsError } from '../../tree/errno.js'

t.test('node fs errors keep their errno name', async (t) => {
  const err = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' })
  t.equal(toHerdsError(err).code, 'ENOENT')
  t.equal(toHerdsError(Object.assign(new Error('x'), { code: 'EOPNOTSUPP' })).code, 'ENOTSUP')
})

t.test('unknown failures become EIO with their message', async (t) => {
  const err = toHerdsError(new TypeError('boom'))
  t.equal(err.code, 'EIO')
  t.equal(err.message, 'boom')
  t.equal(toHerdsError(new HerdsError('EBUSY', 'busy')).code, 'EBUSY')
})

t.test('errno numbers differ by platform where they must', async (t) => {
  t.equal(errnoNumber('ENOENT', 'linux'), 2)
  t.equal(errnoNumber('EHOSTDOWN', 'linux'), 112)
  t.equal(errnoNumber('EHOSTDOWN', 'darwin'), 64)
  t.equal(errnoNumber('ENOTEMPTY', 'darwin'), 66)
})
