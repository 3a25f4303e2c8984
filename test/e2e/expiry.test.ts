// Jobs made by new or mkdir that never get a cmd, through a real mount (issue 11, point 6): `cat exit` of one
// ends with an error once it expires, status and catalog say expired and why, a late cmd is refused, how many
// may wait at once is bounded, and expiry holds across a restart of the node.
import { spawn, spawnSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { herdsUp, spawnHerds, tempDir } from './harness.js'

const EXPIRY_S = 2
const up = await herdsUp(t, 'studio', ['--job-expiry', String(EXPIRY_S)])
const exec = join(up.nodeDir, 'exec')
const sh = (script: string, cwd = exec): { status: number | null, stdout: string, stderr: string } =>
  spawnSync('sh', ['-c', script], { cwd, encoding: 'utf8', timeout: 60_000 })
const status = async (dir: string): Promise<Record<string, unknown>> => JSON.parse(await readFile(join(dir, 'status'), 'utf8'))

/** Starts `herds node` as a separate process and resolves with its exec/ once the mount reaches it. */
async function startNode (name: string, home: string, expiry: number): Promise<{ exec: string, stop: () => Promise<unknown> }> {
  const node = spawnHerds(t, ['node', '--host', up.url, '--name', name, '--job-expiry', String(expiry)], home, { HERDS_TOKEN: up.adminToken })
  await node.waitFor(new RegExp(`node\\s+${name}`))
  const dir = join(up.mountpoint, 'nodes', name, 'exec')
  for (let tries = 0; !(await readFile(join(dir, 'README.md')).then(() => true, () => false)); tries++) {
    if (tries > 200) throw new Error(`node ${name} did not show in the mount`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return { exec: dir, stop: () => node.stop() }
}

/** Runs `cat <file>` in the background; resolves with how it ended, or "still waiting" after `ms`. */
function catFile (file: string, ms: number): Promise<{ code: number | null, stderr: string } | 'still waiting'> {
  return new Promise((resolve) => {
    const cat = spawn('cat', [file], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    cat.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    const timer = setTimeout(() => { resolve('still waiting'); cat.kill('SIGKILL') }, ms)
    cat.on('exit', (code) => { clearTimeout(timer); resolve({ code, stderr }) })
  })
}

t.test('cat exit of a job that never gets a cmd ends with "Connection timed out" once it expires; status says why', async (t) => {
  const box = join(up.nodeDir, 'sandboxes', 'quiet')
  sh(`mkdir ${box}`)
  const id = sh('cat new').stdout.trim()
  sh('mkdir jobs/named')
  const boxId = sh('cat new', join(box, 'exec')).stdout.trim()
  t.ok(id && boxId, `jobs ${id} and ${boxId}`)
  const started = Date.now()
  // Started before the expiry, as an agent that reads before it writes, or waits on a job it forgot to start.
  const [exit, stdout, named, inBox] = await Promise.all([
    catFile(join(exec, 'jobs', id, 'exit'), 30_000),
    catFile(join(exec, 'jobs', id, 'stdout'), 30_000),
    catFile(join(exec, 'jobs', 'named', 'exit'), 30_000),
    catFile(join(box, 'exec', 'jobs', boxId, 'exit'), 30_000),
  ])
  const took = Date.now() - started
  for (const [what, ended] of Object.entries({ exit, stdout, named, inBox })) {
    t.match(ended, { code: 1, stderr: /Connection timed out/ }, `${what}: cat ended with ETIMEDOUT`)
  }
  t.ok(took >= (EXPIRY_S - 0.5) * 1000, `not before the expiry (${took} ms)`)
  const record = await status(join(exec, 'jobs', id))
  t.match(record, { state: 'expired', startedAt: null, endedAt: String, error: new RegExp(`^job ${id} was allocated at ${record.createdAt as string} and given no cmd within ${EXPIRY_S} s, so it expired$`) })
  t.match(await status(join(box, 'exec', 'jobs', boxId)), { state: 'expired' }, 'in a sandbox too')
  t.match(sh(`cat jobs/${id}/exit`), { status: 1, stderr: /Connection timed out/ }, 'a read after the expiry fails at once')
  const late = sh(`echo 'echo late' > jobs/${id}/cmd`)
  t.match(late.stderr, /Device or resource busy/, 'a late cmd is refused')
  t.match(await readFile(join(exec, 'error'), 'utf8'), new RegExp(`jobs/${id}/cmd: EBUSY: job ${id} was allocated at .* so it expired; take a new job \\(cat new\\)`), 'error says why')
  const catalog = JSON.parse(await readFile(join(up.mountpoint, '.herds', 'catalog', 'jobs.json'), 'utf8')) as Array<Record<string, unknown>>
  t.match(catalog.find((job) => job.node === up.name && job.id === id), { state: 'expired' }, 'the catalog says so too')
})

t.test('a run token looping cat new gets EAGAIN at 100 waiting jobs; cat error says why; the slot still runs', async (t) => {
  // A node of its own with a long expiry, so none of the 100 expires while the loop runs.
  const many = (await startNode('many', tempDir(t), 600)).exec
  const loop = sh('i=0; while [ $i -lt 150 ] && cat new > /dev/null; do i=$((i+1)); done; echo $i', many)
  t.equal(loop.stdout.trim(), '100', 'the 101st cat new failed')
  t.match(loop.stderr, /Resource temporarily unavailable/)
  t.match(await readFile(join(many, 'error'), 'utf8'), /new: EAGAIN: 100 jobs made here are waiting for a cmd, the most allowed: give them their cmd, or wait for them to expire \(600 s after they were made\)/)
  t.match(sh('mkdir jobs/one-more', many).stderr, /Resource temporarily unavailable/, 'mkdir jobs/<name> too')
  t.match(sh('echo "echo slot" > cmd && cat stdout', many), { status: 0, stdout: 'slot\n' }, 'the slot still runs')
  t.match(sh('echo "echo own" > jobs/1/cmd && cat jobs/1/stdout && cat new', many), { status: 0, stdout: /^own\n\d+\n$/ }, 'a job given its cmd frees a place')
})

t.test('expiry holds across a restart of the node: a job made before it, past its time, is expired at the start', async (t) => {
  const home = tempDir(t)
  const first = await startNode('laptop', home, 600)
  const laptop = first.exec
  const id = sh('cat new', laptop).stdout.trim()
  await first.stop() // it stops with the job still waiting for a cmd
  await new Promise((resolve) => setTimeout(resolve, (EXPIRY_S + 0.5) * 1000))
  await startNode('laptop', home, EXPIRY_S)
  t.match(await status(join(laptop, 'jobs', id)), { state: 'expired', error: /given no cmd within 2 s/ })
  t.match(sh(`cat jobs/${id}/exit`, laptop), { status: 1, stderr: /Connection timed out/ })
})
