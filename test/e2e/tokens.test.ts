// Tokens and scopes through real mounts (issue 5): read, run and admin mounts, revocation,
// a wrong token, node tokens bound to a name, control writes validated and audited.
import { spawnSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import WebSocket from 'ws'
import { errnoOf } from './files.js'
import { herdsUp, isMounted, spawnHerds, tempDir, unmountAtTeardown, type HerdsProcess, type Teardown } from './harness.js'

const up = await herdsUp(t)
const control = join(up.mountpoint, '.herds', 'control')

/** Makes a token through the admin mount and reads its secret (once). */
async function makeToken (request: Record<string, unknown>): Promise<string> {
  await writeFile(join(control, 'tokens', 'create'), JSON.stringify(request))
  return (await readFile(join(control, 'tokens', String(request.name), 'secret'), 'utf8')).trim()
}

/** `herds mount --token` as a user would, in a directory of its own. */
async function mountWith (t: Teardown, token: string): Promise<{ proc: HerdsProcess, dir: string }> {
  const root = tempDir(t)
  const dir = join(root, 'mnt')
  unmountAtTeardown(t, dir)
  const proc = spawnHerds(t, ['mount', '--token', token, up.url, dir], root)
  await proc.waitFor(/mount\s+/)
  return { proc, dir }
}

/** What the shell says for `echo x > path`. */
function shellWrite (path: string): { status: number | null, stderr: string } {
  const result = spawnSync('sh', ['-c', `echo x > '${path}'`], { encoding: 'utf8' })
  return { status: result.status, stderr: result.stderr }
}

t.test('a read token reads everywhere allowed and writes nowhere; modes say so', async (t) => {
  const { dir } = await mountWith(t, await makeToken({ name: 'reader', scope: 'read' }))
  const exec = join(dir, 'nodes', up.name, 'exec')
  t.match(await readFile(join(dir, 'README.md'), 'utf8'), /Herds/)
  t.equal(JSON.parse(await readFile(join(dir, 'nodes', up.name, 'info.json'), 'utf8')).name, up.name)
  t.match(await readFile(join(exec, 'README.md'), 'utf8'), /cmd/)
  t.ok(Array.isArray(JSON.parse(await readFile(join(dir, '.herds', 'catalog', 'nodes.json'), 'utf8'))))
  const refused = shellWrite(join(exec, 'cmd'))
  t.not(refused.status, 0)
  t.match(refused.stderr, /Permission denied/)
  t.equal(await errnoOf(readFile(join(exec, 'new'))), 'EACCES', 'cat new would start a job')
  t.equal(await errnoOf(mkdir(join(exec, 'jobs', 'mine'))), 'EACCES', 'nor may it make a job with mkdir')
  t.equal(await errnoOf(readFile(join(dir, '.herds', 'control', 'errors.log'))), 'EACCES')
  t.match(await readFile(join(dir, '.herds', 'control', 'README.md'), 'utf8'), /admin/)
  t.equal(statSync(join(exec, 'cmd')).mode & 0o222, 0, 'cmd shows no write bits')
  t.equal(statSync(join(exec, 'new')).mode & 0o777, 0, 'new shows neither')
  t.equal(await errnoOf(readFile(join(exec, 'status'), 'utf8').then(() => writeFile(join(dir, 'nodes', up.name, 'volumes', 'x'), ''))), 'EACCES')
  t.match(await readFile(join(control, 'errors.log'), 'utf8'), /nodes\/studio\/exec\/cmd \[reader\] EACCES: changing .* needs a token of scope run/)
})

t.test('a run token runs commands but cannot write control', async (t) => {
  const { dir } = await mountWith(t, await makeToken({ name: 'runner', scope: 'run' }))
  const exec = join(dir, 'nodes', up.name, 'exec')
  await writeFile(join(exec, 'cmd'), 'echo ran by runner\n')
  t.equal(await readFile(join(exec, 'stdout'), 'utf8'), 'ran by runner\n')
  const refused = shellWrite(join(dir, '.herds', 'control', 'tokens', 'create'))
  t.not(refused.status, 0)
  t.match(refused.stderr, /Permission denied/)
  const audit = (await readFile(join(control, 'audit.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l))
  t.ok(audit.some((e) => e.token === 'runner' && e.event === 'job' && e.cmd === 'echo ran by runner\n' && e.ok), 'the job start is audited with the token\'s name')
  t.ok(audit.some((e) => e.token === 'up-mount' && e.event === 'control' && e.path === '/.herds/control/tokens/create' && e.ok), 'so is the control write that made the token')
})

t.test('a read token learns no env value from exec/error, whatever line was refused', async (t) => {
  const { dir } = await mountWith(t, await makeToken({ name: 'peeker', scope: 'read' }))
  const box = join(up.nodeDir, 'sandboxes', 'secrets')
  await mkdir(box)
  const refused: Array<[string, string, RegExp]> = [
    ['env', 'export DB_PASSWORD=hunter2-prod\n', /env line 1 is not KEY=VALUE \(leave out "export"\)/],
    ['env', 'KEY=-----BEGIN KEY-----\nMIIEvQ+hunter2/prodBgkq==\n', /env line 2 is not KEY=VALUE/],
    ['env', 'hunter2-prod\n', /env line 1 is not KEY=VALUE \(it has no "="\)/],
    ['ctl', 'kill hunter2-prod\n', /ctl: EINVAL: unknown signal after "kill"/],
    ['ctl', 'hunter2-prod\n', /ctl: EINVAL: ctl takes/],
  ]
  for (const where of [join(up.nodeDir, 'exec'), join(box, 'exec')]) {
    const seen = join(dir, where.slice(up.mountpoint.length), 'error')
    for (const [file, text, reason] of refused) {
      t.equal(await errnoOf(writeFile(join(where, file), text)), 'EINVAL', `${file} <- ${JSON.stringify(text)}`)
      const error = await readFile(seen, 'utf8')
      t.match(error, reason, 'the reader sees why')
      t.notMatch(error, /hunter2/, 'and not the value')
    }
    t.equal(await errnoOf(readFile(join(dir, where.slice(up.mountpoint.length), 'env'))), 'EACCES', 'a value it may not read')
  }
  // A sandbox's config.json holds its env too; its refusals land in the sandbox's exec/error.
  for (const text of ['{"env":{"DB_PASSWORD": hunter2-prod}}', 'hunter2-prod', '{"env":{"DB_PASSWORD":"hunter2-prod"}, "network": "hunter2"}']) {
    await errnoOf(writeFile(join(box, 'config.json'), text))
    const error = await readFile(join(dir, box.slice(up.mountpoint.length), 'exec', 'error'), 'utf8')
    t.match(error, /config\.json: EINVAL: config\.json/, `config.json <- ${text}: the reader sees why`)
    t.notMatch(error, /hunter2/, 'and not the value')
  }
})

t.test('revoking a token closes the mount that uses it within a second', async (t) => {
  const { proc, dir } = await mountWith(t, await makeToken({ name: 'doomed', scope: 'read' }))
  t.ok(isMounted(dir))
  const started = Date.now()
  spawnSync('rmdir', [join(control, 'tokens', 'doomed')])
  const code = await proc.exited
  const tookMs = Date.now() - started
  t.equal(code, 1, 'the mount exits non-zero')
  t.ok(tookMs < 1000, `gone after ${tookMs} ms`)
  t.notOk(isMounted(dir), 'and is unmounted')
  t.match(proc.output(), /herds: mount: the token "doomed" was revoked/)
  t.notOk(existsSync(join(control, 'tokens', 'doomed')), 'the token is gone from the list')
})

t.test('a secret is shown once; info.json never shows it or its hash', async (t) => {
  const secret = await makeToken({ name: 'once', scope: 'read' })
  t.match(secret, /^herds_/)
  t.equal(await errnoOf(readFile(join(control, 'tokens', 'once', 'secret'))), 'ENOENT')
  const info = await readFile(join(control, 'tokens', 'once', 'info.json'), 'utf8')
  t.match(JSON.parse(info), { name: 'once', scope: 'read' })
  t.notMatch(info, /hash|herds_/)
  t.notMatch(await readFile(join(control, 'audit.jsonl'), 'utf8'), secret, 'nor does the audit')
})

t.test('a wrong token is refused at the upgrade with 401, and herds mount says so in one line', async (t) => {
  const socket = new WebSocket(up.url, { headers: { authorization: 'Bearer herds_' + 'x'.repeat(43) } })
  const status = await new Promise<number | undefined>((resolve) => {
    socket.on('unexpected-response', (_req, res) => { resolve(res.statusCode); socket.terminate() })
    socket.on('open', () => resolve(101))
    socket.on('error', () => {})
  })
  t.equal(status, 401)
  const root = tempDir(t)
  unmountAtTeardown(t, join(root, 'mnt'))
  const mount = spawnHerds(t, ['mount', '--token', 'herds_' + 'y'.repeat(43), up.url, join(root, 'mnt')], root)
  t.equal(await mount.exited, 1)
  t.match(mount.output(), /^herds: the host at \S+ refused the token \(HTTP 401\)/)
  t.equal(mount.output().trim().split('\n').length, 1, 'one line')
})

t.test('a node token for one name cannot register as another', async (t) => {
  const token = await makeToken({ name: 'desk-node', scope: 'node', node: 'desk' })
  const laptop = spawnHerds(t, ['node', '--host', up.url, '--token', token, '--name', 'laptop'], tempDir(t))
  t.equal(await laptop.exited, 1)
  t.match(laptop.output(), /the token "desk-node" is for node "desk"; it cannot register as "laptop"/)
  t.notOk(existsSync(join(up.mountpoint, 'nodes', 'laptop')))
  const desk = spawnHerds(t, ['node', '--host', up.url, '--token', token, '--name', 'desk'], tempDir(t))
  await desk.waitFor(/node\s+desk/)
  t.ok((await readdir(join(up.mountpoint, 'nodes'))).includes('desk'), 'under its own name it joins')
  await desk.stop()
  await writeFile(join(control, 'nodes', 'desk', 'forget'), 'yes\n')
  t.notOk((await readdir(join(up.mountpoint, 'nodes'))).includes('desk'), 'and an offline node can be forgotten')
  t.equal(await errnoOf(writeFile(join(control, 'nodes', up.name, 'forget'), 'yes\n')), 'EBUSY', 'not while online')
})

t.test('bad JSON or a schema violation in a control file: EINVAL, the reason in errors.log, nothing applied', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['tokens/create', '{"name":"x1","scope":"root"}', /tokens\/create: scope: Invalid option/],
    ['tokens/create', '{"name":"x2","scope":"node"}', /tokens\/create: node: a "node" scope needs/],
    ['tokens/create', '{"name":', /tokens\/create is not JSON/],
    ['sandboxes/create', `{"node":"${up.name}","name":"half","config":{"network":"no"}}`, /sandboxes\/create: config\.network: Invalid input/],
    ['volumes/create', `{"node":"${up.name}","name":"../up"}`, /volumes\/create: name: a name is/],
    ['sandboxes/create', '{"node":"nowhere","name":"box"}', /no node named nowhere \(online: studio\)/],
  ]
  for (const [file, body, reason] of cases) {
    const refused = shellWrite(join(control, file)) // a plain refusal first: x is not JSON
    t.not(refused.status, 0, `${file}: x`)
    const result = spawnSync('sh', ['-c', `printf '%s' '${body}' > '${join(control, file)}'`], { encoding: 'utf8' })
    const log = await readFile(join(control, 'errors.log'), 'utf8')
    t.match(log.trim().split('\n').at(-1), reason, `${file} ${body}: ${result.stderr.trim()}`)
    t.match(log.trim().split('\n').at(-1), new RegExp(`/.herds/control/${file} \\[up-mount\\] E`), 'with the path and the token')
  }
  t.notOk(existsSync(join(control, 'tokens', 'x1')), 'no token made')
  t.notOk(existsSync(join(up.nodeDir, 'sandboxes', 'half')), 'no sandbox made')
  t.equal(await errnoOf(writeFile(join(control, 'tokens', 'create'), '{"name":"x1","scope":"root"}')), 'EINVAL', 'EINVAL where a program sees it')
})

t.test('a token that expires closes its mount when it does; one already past is refused', async (t) => {
  const expiresAt = new Date(Date.now() + 2500).toISOString()
  const { proc, dir } = await mountWith(t, await makeToken({ name: 'brief', scope: 'read', expiresAt }))
  t.ok(isMounted(dir))
  t.equal(await proc.exited, 1, 'the mount stops when the token expires')
  t.ok(Date.now() >= Date.parse(expiresAt), 'not before')
  t.match(proc.output(), /the token "brief" has expired/)
  t.notOk(isMounted(dir))
  const past = new Date(Date.now() - 1000).toISOString()
  t.equal(await errnoOf(writeFile(join(control, 'tokens', 'create'), JSON.stringify({ name: 'stale', scope: 'read', expiresAt: past }))), 'EINVAL')
  t.match((await readFile(join(control, 'errors.log'), 'utf8')).trim().split('\n').at(-1), /expiresAt: .* has passed/)
})
