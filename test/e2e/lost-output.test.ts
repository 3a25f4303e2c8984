// Output cut short by a node that died (issue 10, point 11): host, node and mount as separate
// processes, the node killed with -9 mid-job and started again. Reads end with EIO, not EOF.
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { spawnHerds, tempDir, unmountAtTeardown } from './harness.js'

const LINES = 3000
const full = Array.from({ length: LINES }, (_, i) => `line ${i + 1}\n`).join('')

t.test('kill -9 the node mid-job: cat of the lost job\'s output gives what was kept, then EIO', async (t) => {
  const root = tempDir(t)
  const mnt = join(root, 'mnt')
  unmountAtTeardown(t, mnt)
  const host = spawnHerds(t, ['host', '--port', '0'], root)
  const url = (await host.waitFor(/host\s+(ws:\/\/\S+)/))[1]
  let node = spawnHerds(t, ['node', '--host', url, '--name', 'studio'], root)
  await node.waitFor(/node\s+studio/)
  const mount = spawnHerds(t, ['mount', url, mnt], root)
  await mount.waitFor(/mount\s+/)
  const exec = join(mnt, 'nodes', 'studio', 'exec')

  await writeFile(join(exec, 'cmd'), `for i in $(seq 1 ${LINES}); do echo line $i; sleep 0.01; done\n`)
  const { id, pid } = JSON.parse(await readFile(join(exec, 'status'), 'utf8')) as { id: string, pid: number }
  t.teardown(() => { try { process.kill(-pid, 'SIGKILL') } catch { /* it died with its pipe */ } })
  // A reader that streams while the node dies.
  const live = spawn('cat', [join(exec, 'stdout')], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => live.kill('SIGKILL'))
  let liveOut = ''
  let liveErr = ''
  live.stdout.on('data', (chunk) => { liveOut += chunk })
  live.stderr.on('data', (chunk) => { liveErr += chunk })
  const liveExit = new Promise<number | null>((resolve) => live.on('exit', resolve))

  const onDisk = join(root, 'nodes', 'studio', 'jobs', id, 'stdout')
  for (let i = 0; i < 200 && (readFileSync(onDisk, 'utf8').match(/\n/g)?.length ?? 0) < 300; i++) await new Promise((resolve) => setTimeout(resolve, 100))
  node.signal('SIGKILL')
  await node.exited
  node = spawnHerds(t, ['node', '--host', url, '--name', 'studio'], root)
  await node.waitFor(/node\s+studio/, 30_000)

  const kept = readFileSync(onDisk, 'utf8')
  const lines = kept.split('\n').length - 1
  t.ok(lines >= 300 && lines < LINES, `${lines} of ${LINES} lines were kept`)
  t.equal(kept, full.slice(0, kept.length), 'whole lines, in order')
  t.match(JSON.parse(await readFile(join(exec, 'status'), 'utf8')), { state: 'lost' })

  for (const stream of ['stdout', 'output']) {
    const after = spawnSync('cat', [join(exec, stream)], { encoding: 'utf8', timeout: 60_000 })
    t.not(after.status, 0, `cat ${stream} fails`)
    t.match(after.stderr, /Input\/output error/)
    t.equal(after.stdout, kept, 'after all that was kept')
  }
  t.equal(await readFile(join(exec, 'exit'), 'utf8'), '255\n')

  const code = await liveExit
  t.not(code, 0, `the reader that streamed through the crash ends with ${code}: ${liveErr.trim()}`)
  t.match(liveErr, /Input\/output error|Host is down/)
  t.equal(liveOut, kept.slice(0, liveOut.length), 'and saw only kept output')
})
