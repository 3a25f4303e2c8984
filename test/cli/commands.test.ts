// The everyday CLI as a person types it (issue 6), against a real `herds up`: run, ls, cat,
// status, jobs, token, sandbox, volume, doctor, install.
import { spawnSync } from 'node:child_process'
import { readFileSync, statSync, existsSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import t from 'tap'
import { againPastFenceRace, HERDS_BIN, herdsUp, tempDir } from '../e2e/harness.js'

const up = await herdsUp(t, 'clinode')
const env = { ...process.env, HERDS_URL: up.url, HERDS_TOKEN: up.adminToken, HERDS_HOME: up.home }
const herds = (args: string[], input?: string, extraEnv: Record<string, string> = {}): { status: number | null, stdout: string, stderr: string } =>
  spawnSync(process.execPath, [HERDS_BIN, ...args], { env: { ...env, ...extraEnv }, input, encoding: 'utf8', timeout: 60_000 })
const shell = (script: string): { status: number | null, stdout: string, stderr: string } =>
  spawnSync('sh', ['-c', script], { env: { ...env, HERDS: `${process.execPath} ${HERDS_BIN}` }, encoding: 'utf8', timeout: 60_000 })

t.test('herds run: exit codes, pipes both ways, timeouts, env, sandboxes', async (t) => {
  t.equal(herds(['run', '--', 'sh', '-c', 'exit 7']).status, 7, 'exits with the job\'s exit code')
  const seq = shell('$HERDS run -- seq 1 1000000 | tail -1')
  t.equal(seq.stdout, '1000000\n', 'a million lines through a pipe')
  t.equal(shell('echo hi | $HERDS run -- cat').stdout, 'hi\n', 'stdin is forwarded')
  t.equal(shell("head -c 5000000 /dev/zero | $HERDS run --timeout 30 'sleep 1; wc -c'").stdout.trim(), '5000000', 'all of a 5 MB stdin, however slowly the job reads')
  const split = herds(['run', '--', 'sh', '-c', 'echo out; echo err >&2'])
  t.equal(split.stdout, 'out\n')
  t.equal(split.stderr, 'err\n', 'stderr stays stderr')
  t.equal(herds(['run', 'echo $((6 * 7)) | cat']).stdout, '42\n', 'one word is a shell line')
  t.equal(herds(['run', '--', 'echo', 'a  b', '$HOME']).stdout, 'a  b $HOME\n', 'several words are quoted as given')
  const timed = herds(['run', '--timeout', '1', '--', 'sleep', '30'])
  t.equal(timed.status, 143)
  t.match(timed.stderr, /herds: the job timed out after 1 s/)
  t.equal(herds(['run', '--env', 'GREETING=hello there', '--', 'sh', '-c', 'echo $GREETING']).stdout, 'hello there\n')
  t.equal(herds(['sandbox', 'create', 'clibox']).status, 0)
  const pwd = await againPastFenceRace(() => herds(['run', '--sandbox', 'clibox', '--', 'pwd']), (r) => ({ stderr: r.stderr, exit: r.status }))
  t.match(pwd.stdout, /sandboxes\/clibox\/workspace\n$/, pwd.stderr)
  const nowhere = herds(['run', '--node', 'nowhere', '--', 'true'])
  t.equal(nowhere.status, 255, 'herds\' own failure is 255, as with ssh')
  t.match(nowhere.stderr, /^herds: /)
  t.equal(nowhere.stderr.trim().split('\n').length, 1, 'one line, no stack trace')
  const badFlag = herds(['run', '--timeout', 'soon', '--', 'true'])
  t.equal(badFlag.status, 255)
  t.match(badFlag.stderr, /^herds: --timeout: seconds, a number/)
})

t.test('ls, cat, status and jobs; --json where they list', async (t) => {
  t.match(herds(['ls', `/nodes/${up.name}`]).stdout, /^exec\n(.*\n)*info\.json\n/m)
  t.match(herds(['ls', '-l', `/nodes/${up.name}/exec`]).stdout, /TYPE\s+MODE\s+SIZE\s+NAME\nfile\s+0444\s+\d+\s+README\.md/)
  t.match(JSON.parse(herds(['ls', '--json', '/']).stdout), [{ name: '.herds', type: 'dir' }])
  t.match(herds(['cat', '/README.md']).stdout, /^# Herds/)
  const status = JSON.parse(herds(['status', '--json']).stdout)
  t.match(status, { health: { defaultNode: up.name }, nodes: [{ name: up.name, online: true }] })
  t.match(herds(['status']).stdout, new RegExp(`default node ${up.name}\\nNAME\\s+ONLINE`))
  const jobs = JSON.parse(herds(['jobs', '--json', '--limit', '3']).stdout)
  t.equal(jobs.length, 3)
  t.equal(jobs[0].node, up.name)
})

t.test('token create, ls, revoke: the secret printed once, the refusal in one line', async (t) => {
  const created = herds(['token', 'create', 'cli-reader', '--scope', 'read'])
  t.match(created.stdout, /^herds_\S+\n$/)
  const reader = herds(['ls', '/nodes'], undefined, { HERDS_TOKEN: created.stdout.trim() })
  t.equal(reader.stdout, `${up.name}\n`, 'the new token works')
  t.match(JSON.parse(herds(['token', 'ls', '--json']).stdout), [{ name: 'admin' }])
  t.notMatch(herds(['token', 'ls']).stdout, /herds_/, 'no secret in the list')
  t.equal(herds(['token', 'revoke', 'cli-reader']).status, 0)
  const refused = herds(['ls', '/nodes'], undefined, { HERDS_TOKEN: created.stdout.trim() })
  t.equal(refused.status, 1)
  t.match(refused.stderr, /refused the token \(HTTP 401\)/)
  const bad = herds(['token', 'create', 'x', '--scope', 'root'])
  t.equal(bad.status, 1)
  t.match(bad.stderr, /^herds: tokens\/create: scope: Invalid option/)
})

t.test('sandbox and volume create, ls, rm', async (t) => {
  t.equal(herds(['sandbox', 'create', 'cliweb', '--config', '{"network":false}']).stdout, `/nodes/${up.name}/sandboxes/cliweb\n`)
  t.match(herds(['sandbox', 'ls']).stdout, /^cliweb$/m)
  t.equal(JSON.parse(readFileSync(join(up.nodeDir, 'sandboxes', 'cliweb', 'config.json'), 'utf8')).network, false)
  const bad = herds(['sandbox', 'create', 'clibad', '--config', '{"network":"no"}'])
  t.equal(bad.status, 1)
  t.match(bad.stderr, /^herds: sandboxes\/create: config\.network: /)
  t.notOk(existsSync(join(up.nodeDir, 'sandboxes', 'clibad')))
  t.equal(herds(['sandbox', 'rm', 'cliweb']).status, 0)
  t.notMatch(herds(['sandbox', 'ls']).stdout, /cliweb/)
  t.equal(herds(['volume', 'create', 'clivol']).status, 0)
  t.same(JSON.parse(herds(['volume', 'ls', '--json']).stdout), ['clivol'])
  t.equal(herds(['volume', 'rm', 'clivol']).status, 0)
  t.same(JSON.parse(herds(['volume', 'ls', '--json']).stdout), [])
})

t.test('refusals say what the user can act on, in the namespace\'s words', async (t) => {
  t.equal(herds(['run', '--node', 'nosuch', '--', 'true']).stderr, `herds: no node named nosuch (online: ${up.name})\n`)
  t.match(herds(['run', '--sandbox', 'nosuch', '--', 'true']).stderr, /^herds: no sandbox named nosuch on this node \(sandboxes: [^)]*\bclibox\b/)
  t.equal(herds(['sandbox', 'create', 'twice']).status, 0)
  t.equal(herds(['sandbox', 'create', 'twice']).stderr, `herds: sandbox twice exists already on ${up.name}\n`)
  t.equal(herds(['sandbox', 'rm', 'never']).stderr, `herds: no sandbox named never on ${up.name}\n`)
  t.equal(herds(['volume', 'create', 'full']).status, 0)
  writeFileSync(join(up.nodeDir, 'volumes', 'full', 'f'), 'x')
  t.equal(herds(['volume', 'rm', 'full']).stderr, `herds: volume full on ${up.name} is not empty; remove what is in it first\n`)
  const log = readFileSync(join(up.mountpoint, '.herds', 'control', 'errors.log'), 'utf8')
  t.match(log, /volume full on \S+ is not empty/, 'errors.log says the same')
})

t.test('herds doctor: all in place says so and names the FUSE layer; without libfuse3 it names the fallback, without both the package', async (t) => {
  const mnt = join(tempDir(t), 'empty')
  const good = herds(['doctor', '--mount', mnt])
  t.equal(good.status, 0, good.stdout)
  t.match(good.stdout, /ok\s+FUSE layer\s+libfuse3 \(the binding loads\)/)
  t.match(good.stdout, /ok\s+host\s+.*the token is accepted/)
  t.match(good.stdout, /Everything is in place\.\n$/)
  const bwrap = spawnSync('sh', ['-c', 'command -v bwrap']).status === 0
  const find = (name: string): string => spawnSync('sh', ['-c', `readlink -f $(ldconfig -p | awk '/${name} /{print $NF; exit}')`], { encoding: 'utf8' }).stdout.trim()
  const lib2 = find('libfuse.so.2')
  const lib3 = find('libfuse3.so.3')
  if (!bwrap || !lib2 || !lib3) return void t.comment('skipped: needs bwrap and installed libfuse2 and libfuse3 to hide')
  // The libraries really gone for this one process: an empty file in their place.
  const hiding = (...libs: string[]): string[] => ['--dev-bind', '/', '/', ...libs.flatMap((lib) => ['--ro-bind', '/dev/null', lib]), process.execPath, HERDS_BIN, 'doctor', '--mount', mnt]
  const fallback = spawnSync('bwrap', hiding(lib3), { env, encoding: 'utf8' })
  t.equal(fallback.status, 0, fallback.stdout)
  t.match(fallback.stdout, /ok\s+FUSE layer\s+fuse-native on libfuse 2, the fallback: cannot load the libfuse3 binding/)
  const without = spawnSync('bwrap', hiding(lib2, lib3), { env, encoding: 'utf8' })
  t.equal(without.status, 1)
  t.match(without.stdout, /FAIL\s+FUSE layer\s+cannot load FUSE/)
  t.match(without.stdout, /fix: install libfuse 2: sudo apt-get install fuse3 libfuse2/)
  t.match(without.stdout, /1 problem\(s\) found/)
  const addon = resolve(HERDS_BIN, '../../../tree/native/build/Release/herds_at.node')
  t.match(good.stdout, /ok\s+file calls\s+fifos, sockets, extended attributes and rename flags/)
  const noCalls = spawnSync('bwrap', hiding(addon), { env, encoding: 'utf8' })
  t.equal(noCalls.status, 1, noCalls.stdout)
  t.match(noCalls.stdout, /FAIL\s+file calls\s+tree\/native is not built/)
  t.match(noCalls.stdout, /fix: run npm run setup again with a C compiler/)
})

t.test('herds install writes a user service that runs herds at login; uninstall removes it', async (t) => {
  const home = tempDir(t)
  const installEnv = { HOME: home, XDG_CONFIG_HOME: join(home, '.config') }
  const installed = herds(['install', '--no-start', 'node', '--host', 'wss://herds.example:7077', '--name', 'laptop'], undefined, installEnv)
  t.equal(installed.status, 0, installed.stderr)
  const unit = readFileSync(join(home, '.config', 'systemd', 'user', 'herds.service'), 'utf8')
  t.match(unit, new RegExp(`ExecStart=${process.execPath} \\S*herds\\.js node --host wss://herds\\.example:7077 --name laptop\\n`))
  t.match(unit, /Restart=on-failure/)
  const envFile = join(home, '.config', 'herds', 'service.env')
  t.equal(statSync(envFile).mode & 0o777, 0o600, 'the token file is private')
  t.match(readFileSync(envFile, 'utf8'), new RegExp(`HERDS_TOKEN=${up.adminToken}\\n`))
  t.match(installed.stdout, /service\.env \(0600: it holds HERDS_HOME and the token\)/, 'it says what the file holds')
  t.match(installed.stdout, /not started \(--no-start\); start it with: systemctl --user daemon-reload && systemctl --user enable --now herds\.service/)
  const removed = herds(['uninstall'], undefined, installEnv)
  t.match(removed.stdout, /removed /)
  t.notOk(existsSync(join(home, '.config', 'systemd', 'user', 'herds.service')))
  t.notOk(existsSync(envFile))
  t.equal(herds(['install', 'bogus'], undefined, installEnv).status, 1)
})
