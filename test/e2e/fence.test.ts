// A fenced sandbox job never sees a Herds mount (issue 10, point 2): not the one herds up made (here in
// /var/tmp, outside /tmp and the node's home, with a space in its name), with or without network; not one
// inside its own workspace; not one made while it runs; and it cannot take a new token's secret.
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { FENCE_CHECK } from '../../nodes/fence.js'
import { fuseMounts } from '../../nodes/mounts.js'
import { adminToken, runJob, spawnHerds, type Teardown } from './harness.js'

const hasBwrap = spawnSync('sh', ['-c', 'command -v bwrap']).status === 0
const fenced = { skip: !hasBwrap && 'bubblewrap is not installed' }

/** A directory under /var/tmp (neither /tmp nor any node's home), removed at teardown. */
function varTmp (t: Teardown): string {
  const dir = mkdtempSync('/var/tmp/herds-fence-')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Unmounts at teardown whatever is mounted there (a path with a space is \040 in /proc/mounts, so no check first). */
function unmountLater (t: Teardown, dir: string): void {
  t.teardown(() => { spawnSync('fusermount', ['-uz', dir]); spawnSync('umount', ['-l', dir]) })
}

const root = varTmp(t)
const home = join(root, 'home')
const mountpoint = join(root, 'herds mount')
unmountLater(t, mountpoint)
const up = spawnHerds(t, ['up', '--port', '0', '--name', 'studio', '--mount', mountpoint], home)
const url = (await up.waitFor(/host\s+(ws:\/\/\S+)/))[1]
await up.waitFor(/Ctrl-C to stop/)
const boxes = join(mountpoint, 'nodes', 'studio', 'sandboxes')
const boxDir = (box: string): string => join(home, 'nodes', 'studio', 'sandboxes', box)

async function run (box: string, cmd: string): Promise<{ output: string, exit: string }> {
  return await runJob(join(boxes, box, 'exec'), cmd)
}

/** What a job runs to look into a mount at `dir`: all it should print is the type of what is there, an empty tmpfs. */
const probe = (dir: string): string => [
  `ls -A '${dir}'`,
  `cat '${dir}/README.md'`,
  `ls '${dir}/nodes/studio/sandboxes'`,
  `cat '${dir}/nodes/studio/sandboxes/other/config.json'`,
  `cat '${dir}/.herds/control/audit.jsonl'`,
].map((line) => `{ ${line}; } 2>/dev/null`).join('; ') + `; stat -f -c %T '${dir}'`

await mkdir(join(boxes, 'web'))
await mkdir(join(boxes, 'other'))
await writeFile(join(boxes, 'other', 'config.json'), JSON.stringify({ env: { OTHER_SECRET: 'other-env-value' } }))

for (const network of [false, true]) {
  t.test(`a job with "network": ${network} cannot list or read the Herds mount`, fenced, async (t) => {
    await writeFile(join(boxes, 'web', 'config.json'), JSON.stringify({ network }))
    const status = JSON.parse(await readFile(join(boxes, 'web', 'status.json'), 'utf8'))
    t.equal(status.fence, 'bwrap', 'fenced whatever the network')
    t.match(status.isolation, /FUSE mounts \(Herds mounts among them\) hidden/)
    const job = await run('web', probe(mountpoint))
    t.equal(job.output, 'tmpfs\n', `saw nothing, and no FUSE mount is left in its view; it printed:\n${job.output}`)
    t.notMatch(job.output, /other-env-value|README|sandboxes|"token"/)
  })
}

t.test('a Herds mount inside the sandbox\'s own workspace is hidden too (a mount under a writable bind)', fenced, async (t) => {
  const inner = join(boxDir('web'), 'workspace', 'inner')
  mkdirSync(inner, { recursive: true })
  unmountLater(t, inner)
  const mount = spawnHerds(t, ['mount', '--token', adminToken(home), url, inner], home)
  await mount.waitFor(/mount\s+/)
  t.match(readFileSync(join(inner, 'README.md'), 'utf8'), /Herds/, 'the node itself sees it')
  const job = await run('web', probe(join(boxDir('web'), 'workspace', 'inner')) + '; ls -A inner')
  t.equal(job.output, 'tmpfs\n', job.output)
})

t.test('allowMounts cannot let a job see a Herds mount', fenced, async (t) => {
  await writeFile(join(boxes, 'web', 'config.json'), JSON.stringify({ allowMounts: [mountpoint] }))
  const job = await run('web', probe(mountpoint))
  t.equal(job.output, 'tmpfs\n', job.output)
})

t.test('the check before bwrap refuses a job when a FUSE mount is there that the fence was not made for', fenced, async (t) => {
  const check = (expected: string): ReturnType<typeof spawnSync> => spawnSync('/bin/sh', ['-c', FENCE_CHECK, 'herds-fence', expected, 'echo', 'ran'], { encoding: 'utf8' })
  const all = fuseMounts().map((mount) => mount.raw)
  t.ok(all.includes(mountpoint.replace(/ /g, '\\040')), 'herds up\'s mount is in the table, its space escaped')
  t.equal(check(all.join('\n')).stdout, 'ran\n', 'every mount known: the job runs')
  const missing = check(all.filter((raw) => !raw.includes('herds\\040mount')).join('\n'))
  t.equal(missing.status, 125)
  t.match(missing.stderr, /herds: a FUSE mount appeared at \S*herds\\040mount as the job started; run it again/)
  t.equal(missing.stdout, '')
})

t.test('a Herds mount made while a job runs does not reach it (where mounts propagate, as systemd makes /)', fenced, async (t) => {
  // A shared mount of our own, so mounts below it propagate as they do on a systemd machine.
  const shared = join(varTmp(t), 'shared')
  mkdirSync(shared)
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'herds-test', shared])
  t.teardown(() => { spawnSync('umount', ['-l', shared]) })
  execFileSync('mount', ['--make-shared', shared])
  const later = join(shared, 'later')
  mkdirSync(later)
  unmountLater(t, later)
  await writeFile(join(boxes, 'web', 'config.json'), JSON.stringify({}))
  await writeFile(join(boxes, 'web', 'exec', 'cmd'), `sleep 3; ${probe(later)}\n`)
  const mount = spawnHerds(t, ['mount', '--token', adminToken(home), url, later], home)
  await mount.waitFor(/mount\s+/)
  t.match(readFileSync(join(later, 'README.md'), 'utf8'), /Herds/, 'mounted while the job sleeps')
  t.equal(await readFile(join(boxes, 'web', 'exec', 'exit'), 'utf8'), '0\n')
  t.equal(await readFile(join(boxes, 'web', 'exec', 'output'), 'utf8'), 'tmpfs\n', 'the job saw nothing of it')
})

t.test('a job cannot take a new token\'s secret; its creator gets it', fenced, async (t) => {
  const control = join(mountpoint, '.herds', 'control')
  // The job watches for the secret from before the token exists.
  await writeFile(join(boxes, 'web', 'exec', 'cmd'), `for i in $(seq 40); do cat '${control}/tokens/raced/secret' 2>/dev/null && break; sleep 0.1; done; echo looked\n`)
  spawnSync('sleep', ['0.5'])
  await writeFile(join(control, 'tokens', 'create'), JSON.stringify({ name: 'raced', scope: 'admin' }))
  spawnSync('sleep', ['1'])
  t.match(await readFile(join(control, 'tokens', 'raced', 'secret'), 'utf8'), /^herds_/, 'the creator reads it')
  await readFile(join(boxes, 'web', 'exec', 'exit'), 'utf8')
  t.equal(await readFile(join(boxes, 'web', 'exec', 'output'), 'utf8'), 'looked\n', 'the job never saw it')
})
