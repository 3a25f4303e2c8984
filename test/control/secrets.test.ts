// A new token's secret goes only to the session that wrote tokens/create (issue 10, point 2): another
// connection with the same admin token is refused and takes nothing, before and after the creator reads it.
import { join } from 'node:path'
import t from 'tap'
import { startHost } from '../../host/server.js'
import { Herds } from '../../mount/sdk/index.js'
import { tempDir } from '../e2e/harness.js'

const host = await startHost({ port: 0, home: join(tempDir(t), 'host') })
t.teardown(() => host.stop())
const connect = async (): Promise<Herds> => {
  const herds = await Herds.connect({ url: host.url, token: host.adminToken })
  t.teardown(() => herds.close())
  return herds
}
const creator = await connect()
const other = await connect()
const secret = (name: string): string => `/.herds/control/tokens/${name}/secret`
const create = (herds: Herds, name: string): Promise<void> => herds.files.write('/.herds/control/tokens/create', JSON.stringify({ name, scope: 'admin' }))

t.test('another session of the same admin token cannot read the secret, and does not use it up', async (t) => {
  await create(creator, 'ci')
  await t.rejects(other.files.read(secret('ci')), { code: 'EACCES', message: /goes only to the connection that wrote tokens\/create/ })
  await t.rejects(other.files.read(secret('ci')), { code: 'EACCES' }, 'nor on a second try')
  const got = (await creator.files.read(secret('ci'))).toString()
  t.match(got, /^herds_[A-Za-z0-9_-]{43}\n$/)
  t.ok(host.tokens.verify(got.trim()), 'and it is the token\'s')
  await t.rejects(creator.files.read(secret('ci')), { code: 'ENOENT' }, 'shown once')
  await t.rejects(other.files.read(secret('ci')), { code: 'ENOENT' })
})

t.test('each session gets its own token\'s secret', async (t) => {
  await create(creator, 'mine')
  await create(other, 'yours')
  await t.rejects(creator.files.read(secret('yours')), { code: 'EACCES' })
  await t.rejects(other.files.read(secret('mine')), { code: 'EACCES' })
  t.match((await other.files.read(secret('yours'))).toString(), /^herds_/)
  t.match((await creator.files.read(secret('mine'))).toString(), /^herds_/)
})

t.test('a session that reconnects is another session: the secret is not shown to it', async (t) => {
  const first = await connect()
  await create(first, 'dropped')
  first.close()
  const again = await connect()
  await t.rejects(again.files.read(secret('dropped')), { code: 'EACCES' }, 'revoke it and make another')
})
