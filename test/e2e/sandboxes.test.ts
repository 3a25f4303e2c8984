// Sandboxes through a real mount (issue 4, first part): workspace, exec bound to it, clean env, bwrap fence.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs'
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { errnoOf } from './files.js'
import { Herds } from '../../mount/sdk/index.js'
import { herdsUp, runJob, tempDir } from './harness.js'

const up = await herdsUp(t)
const boxes = join(up.nodeDir, 'sandboxes')
const run = async (box: string, cmd: string): Promise<{ output: string, exit: string }> => await runJob(join(boxes, box, 'exec'), cmd)
const hasBwrap = spawnSync('sh', ['-c', 'command -v bwrap']).status === 0

t.test('git in a sandbox workspace through the mount, and the same repository seen by a job in it', async (t) => {
  await mkdir(join(boxes, 'web'))
  const ws = join(boxes, 'web', 'workspace')
  const git = (...args: string[]): string => execFileSync('git', ['-c', 'user.email=t@herds', '-c', 'user.name=t', ...args], { cwd: ws, encoding: 'utf8' })
  git('init', '-q', '.')
  await writeFile(join(ws, 'hello.txt'), 'hello\n')
  git('add', 'hello.txt')
  git('commit', '-qm', 'first through FUSE')
  t.match(git('log', '--oneline'), /first through FUSE/)
  const job = await run('web', 'git log --oneline; pwd; echo "home=$HOME tmp=$TMPDIR"')
  t.equal(job.exit, '0\n', job.output)
  t.match(job.output, /first through FUSE/)
  t.match(job.output, /sandboxes\/web\/workspace\n/, 'cwd is the workspace')
  t.match(job.output, /home=\S*sandboxes\/web\/home tmp=\S*sandboxes\/web\/tmp/, 'HOME and TMPDIR inside the sandbox')
})

t.test('links are kept as written in a volume; where sandbox jobs write, links out are neither made nor shown', async (t) => {
  const volumes = join(up.nodeDir, 'volumes')
  await mkdir(join(volumes, 'plain'))
  execFileSync('ln', ['-s', '/etc/passwd', join(volumes, 'plain', 'x')])
  t.equal(readlinkSync(join(volumes, 'plain', 'x')), '/etc/passwd', 'in a volume: made through the mount and shown as written; your kernel follows it on your side')
  const ws = join(boxes, 'web', 'workspace')
  const ln = spawnSync('ln', ['-s', '/etc/passwd', join(ws, 'x')], { encoding: 'utf8' })
  t.match(ln.stderr, /Operation not permitted/, 'in a workspace a link out is refused')
  // A job in the sandbox makes links on the node itself: one out of the workspace, one inside.
  const outside = tempDir(t, 'herds-outside-')
  writeFileSync(join(outside, 'secret'), 'node only')
  await run('web', `ln -s ${outside} far; ln -s ../../../../../../../../etc z; ln -s hello.txt near`)
  for (const name of ['far', 'z']) {
    t.match(spawnSync('readlink', ['-v', join(ws, name)], { encoding: 'utf8' }).stderr, /Permission denied/, `${name}: not shown, so no tool of yours follows it to your own files`)
    t.match(spawnSync('ls', [join(ws, name) + '/'], { encoding: 'utf8' }).stderr, /Permission denied/)
  }
  t.equal(readlinkSync(join(ws, 'near')), 'hello.txt', 'a link inside the workspace is shown')
  // A client that is not a kernel sends the path through the link: the node refuses it.
  const herds = await Herds.connect({ url: up.url, token: up.adminToken })
  t.teardown(() => herds.close())
  const box = await herds.node(up.name).sandbox('web')
  await t.rejects(box.readFile('far/secret'), { code: 'EACCES' }, 'the node does not follow a link out of the workspace')
  await t.rejects(box.writeFile('far/planted', 'x'), { code: 'EACCES' })
  t.notOk(existsSync(join(outside, 'planted')))
})

t.test('a volume a sandbox mounts hides its jobs\' links out, wherever it is seen', async (t) => {
  await mkdir(join(boxes, 'vbox'))
  await writeFile(join(boxes, 'vbox', 'config.json'), JSON.stringify({ volumes: { data: 'shared' } }))
  await run('vbox', 'ln -s /etc data/planted')
  t.match(spawnSync('readlink', ['-v', join(up.nodeDir, 'volumes', 'shared', 'planted')], { encoding: 'utf8' }).stderr, /Permission denied/, 'through volumes/')
  t.match(spawnSync('readlink', ['-v', join(boxes, 'vbox', 'workspace', 'data', 'planted')], { encoding: 'utf8' }).stderr, /Permission denied/, 'through the workspace')
})

t.test('a venv and a tarball with absolute links, through the mount, in a volume', async (t) => {
  const dir = join(up.nodeDir, 'volumes', 'plain')
  execFileSync('python3', ['-m', 'venv', '--without-pip', join(dir, 'venv')])
  t.match(execFileSync('ls', ['-l', join(dir, 'venv', 'bin')], { encoding: 'utf8' }), /python3 -> \//, 'ls -l shows the absolute link')
  const listed = execFileSync('sh', ['-c', 'tar cf - venv | tar tvf -'], { cwd: dir, encoding: 'utf8' })
  t.match(listed, /venv\/bin\/python3 -> \//, 'tar c reads it')
  const src = tempDir(t)
  const tarball = join(tempDir(t), 'links.tar')
  symlinkSync('/usr/bin/env', join(src, 'abs'))
  execFileSync('tar', ['cf', tarball, '-C', src, 'abs'])
  execFileSync('tar', ['xf', tarball, '-C', dir]) // throws if tar exits non-zero
  t.equal(readlinkSync(join(dir, 'abs')), '/usr/bin/env', 'tar x makes an absolute link')
})

t.test('the environment is rebuilt from an allowlist; config.json adds to it', async (t) => {
  process.env.HERDS_TEST_SECRET = 'leak' // not in the host process the node runs in, but a guard all the same
  await writeFile(join(boxes, 'web', 'config.json'), JSON.stringify({ env: { STAGE: 'test' } }))
  const job = await run('web', 'env')
  t.match(job.output, /^STAGE=test$/m)
  t.match(job.output, /^HERDS_SANDBOX=web$/m)
  t.notMatch(job.output, /^HERDS_HOME=/m, 'the node\'s own variables stay behind')
})

t.test('the fence: a job in one sandbox cannot write into another, nor the node\'s home', { skip: !hasBwrap && 'bubblewrap is not installed' }, async (t) => {
  await mkdir(join(boxes, 'other'))
  const status = JSON.parse(await readFile(join(boxes, 'web', 'status.json'), 'utf8'))
  t.equal(status.fence, 'bwrap')
  const otherWs = join(up.home, 'nodes', up.name, 'sandboxes', 'other', 'workspace')
  const home = homedir()
  const job = await run('web', `touch ${otherWs}/intruder; touch ${home}/.herds-intruder; touch /etc/intruder; echo done`)
  t.match(job.output, /cannot touch[\s\S]*cannot touch[\s\S]*cannot touch[\s\S]*done/, 'all three refused')
  t.notOk(existsSync(join(otherWs, 'intruder')))
  t.notOk(existsSync(join(home, '.herds-intruder')))
  const boxDir = join(up.home, 'nodes', up.name, 'sandboxes', 'web')
  const own = await run('web', 'echo x > ../sandbox.json; echo x >> ../jobs/1/stdout; mount -o remount,rw / 2>/dev/null || echo refused-remount')
  t.match(own.output, /refused-remount\n/, 'no remount, even on a root node')
  t.doesNotThrow(() => JSON.parse(readFileSync(join(boxDir, 'sandbox.json'), 'utf8')), 'its record on disk is untouched')
  t.notMatch(readFileSync(join(boxDir, 'jobs', '1', 'stdout'), 'utf8'), /^x$/m, 'its output on disk is untouched')
  const secrets = await run('web', `cat ${join(up.home, 'host', 'admin.token')} || echo no-token; ls ${join(up.home, 'nodes', up.name, 'db')} || echo no-db`)
  t.match(secrets.output, /no-token[\s\S]*no-db/, 'the host\'s admin token and the node\'s database are hidden from jobs')
  t.notMatch(secrets.output, /herds_/)
  await writeFile(join(boxes, 'web', 'config.json'), JSON.stringify({ network: false }))
  const net = await run('web', 'cat /proc/net/dev | grep -c : ')
  t.equal(net.output.trim(), '1', 'only the loopback device without network')
})

t.test('a volume mounted as cache: at workspace/cache through the mount, and as $HERDS_VOLUME_CACHE for jobs', async (t) => {
  await writeFile(join(boxes, 'web', 'config.json'), JSON.stringify({ network: false, volumes: { cache: 'shared' } }))
  await writeFile(join(boxes, 'web', 'workspace', 'cache', 'from-mount.txt'), 'via the mount\n')
  t.equal(await readFile(join(up.nodeDir, 'volumes', 'shared', 'from-mount.txt'), 'utf8'), 'via the mount\n', 'lands in the volume')
  const job = await run('web', 'echo "$HERDS_VOLUME_CACHE"; cat "$HERDS_VOLUME_CACHE/from-mount.txt"; echo from-job > cache/from-job.txt')
  t.equal(job.exit, '0\n', job.output)
  t.match(job.output, /sandboxes\/web\/workspace\/cache\nvia the mount\n/)
  t.equal(await readFile(join(up.nodeDir, 'volumes', 'shared', 'from-job.txt'), 'utf8'), 'from-job\n', 'a job writes into the volume')
})

t.test('an image: pinned through mise where it is installed, else the job runs with a note on stderr', async (t) => {
  const info = JSON.parse(await readFile(join(up.nodeDir, 'info.json'), 'utf8'))
  t.ok(info.images.includes(`node:${process.versions.node}`), `info.json lists what the node has: ${info.images.join(', ')}`)
  await mkdir(join(boxes, 'img'))
  await writeFile(join(boxes, 'img', 'config.json'), JSON.stringify({ image: 'python:3.12' }))
  const job = await run('img', 'echo ran')
  t.equal(job.exit, '0\n')
  t.equal(await readFile(join(boxes, 'img', 'exec', 'stdout'), 'utf8'), 'ran\n', job.output)
  if (!info.images.includes('mise')) {
    t.match(await readFile(join(boxes, 'img', 'exec', 'stderr'), 'utf8'), /^herds: image python:3\.12 would be pinned through mise, which is not installed/)
  }
  t.equal(await errnoOf(writeFile(join(boxes, 'img', 'config.json'), JSON.stringify({ image: 'ruby:3' }))), 'EINVAL')
})

t.test('bad input: invalid config.json is EINVAL with the reason readable; bad names refused', async (t) => {
  t.equal(await errnoOf(writeFile(join(boxes, 'web', 'config.json'), '{"network": "yes"}')), 'EINVAL')
  t.match(await readFile(join(boxes, 'web', 'exec', 'error'), 'utf8'), /config\.json: network: .*boolean/)
  t.equal(await errnoOf(writeFile(join(boxes, 'web', 'config.json'), '{"bogus": 1}')), 'EINVAL', 'unknown fields too')
  t.match(JSON.parse(await readFile(join(boxes, 'web', 'config.json'), 'utf8')), { network: false }, 'nothing half-applied')
  t.equal(await errnoOf(mkdir(join(boxes, 'tab\tname'))), 'EINVAL')
  t.equal(await errnoOf(mkdir(join(boxes, '.hidden'))), 'EINVAL')
  t.equal(await errnoOf(mkdir(join(boxes, 'web'))), 'EEXIST')
})

t.test('stop ends jobs and refuses new ones until start', async (t) => {
  await writeFile(join(boxes, 'web', 'exec', 'cmd'), 'sleep 60.3\n')
  await writeFile(join(boxes, 'web', 'ctl'), 'stop\n')
  t.equal(JSON.parse(await readFile(join(boxes, 'web', 'status.json'), 'utf8')).state, 'stopped')
  t.equal(spawnSync('pgrep', ['-f', 'sleep 60.3']).status, 1, 'its job is gone')
  t.equal(await errnoOf(writeFile(join(boxes, 'web', 'exec', 'cmd'), 'true\n')), 'EBUSY')
  await writeFile(join(boxes, 'web', 'ctl'), 'start\n')
  t.equal((await run('web', 'echo again')).output, 'again\n')
})

t.test('status.json names what a sandbox is doing: ready, busy with running N while jobs run, ready again, stopped', async (t) => {
  const box = join(boxes, 'states')
  await mkdir(box)
  const sandbox = async (): Promise<Record<string, unknown>> => JSON.parse(await readFile(join(box, 'status.json'), 'utf8'))
  t.match(await sandbox(), { state: 'ready', running: 0 }, 'a fresh sandbox runs nothing')
  await writeFile(join(box, 'exec', 'cmd'), 'sleep 30.4\n')
  t.match(await sandbox(), { state: 'busy', running: 1 }, 'while sleep runs')
  const id = (await readFile(join(box, 'exec', 'new'), 'utf8')).trim()
  t.match(await sandbox(), { state: 'busy', running: 1 }, 'a job waiting for its cmd runs nothing')
  await writeFile(join(box, 'exec', 'jobs', id, 'cmd'), 'sleep 30.4\n')
  t.match(await sandbox(), { state: 'busy', running: 2 })
  await writeFile(join(box, 'exec', 'ctl'), 'kill\n')
  await writeFile(join(box, 'exec', 'jobs', id, 'ctl'), 'kill\n')
  await readFile(join(box, 'exec', 'exit'))
  await readFile(join(box, 'exec', 'jobs', id, 'exit'))
  t.match(await sandbox(), { state: 'ready', running: 0 }, 'after they end')
  t.notOk('runningJobs' in await sandbox(), 'one count, named running')
  await writeFile(join(box, 'exec', 'cmd'), 'sleep 30.4\n')
  await writeFile(join(box, 'ctl'), 'stop\n')
  t.match(await sandbox(), { state: 'stopped', running: 0 }, 'after stop, its job ended')
  await writeFile(join(box, 'ctl'), 'start\n')
  t.match(await sandbox(), { state: 'ready' }, 'and ready after start')
})

t.test('rmdir removes a sandbox with running jobs, leaving no process', async (t) => {
  await writeFile(join(boxes, 'other', 'exec', 'cmd'), 'sh -c "sleep 70.7 & sleep 70.7 & wait"\n')
  // Wait until both sleeps run (a fenced start takes a while on a busy machine), not a fixed time.
  const deadline = Date.now() + 15_000
  while (spawnSync('pgrep', ['-c', '-f', '^sleep 70.7']).stdout?.toString().trim() !== '2' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(spawnSync('pgrep', ['-c', '-f', '^sleep 70.7']).stdout.toString().trim(), '2', 'both sleeps run')
  await rmdir(join(boxes, 'other'))
  t.equal(spawnSync('pgrep', ['-f', 'sleep 70.7']).status, 1, 'no sleep left')
  t.notOk(existsSync(join(up.home, 'nodes', up.name, 'sandboxes', 'other')), 'its files are gone')
})
