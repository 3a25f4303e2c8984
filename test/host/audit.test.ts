// A run token must not be able to erase the audit trail (issue 10, point 8): 1,500 jobs with
// commands of 4 KiB of control bytes (each ~24 KiB once escaped for JSON) used to rotate
// audit.jsonl and audit.jsonl.1 away, with every control change in them. A real host and node,
// each its own process; the jobs go through the SDK over WebSocket.
import { createHash } from 'node:crypto'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { MAX_LINE_BYTES } from '../../host/journal.js'
import { Herds } from '../../mount/sdk/index.js'
import { adminToken, spawnHerds, tempDir } from '../e2e/harness.js'

const JOBS = 1500
const AT_ONCE = 16
/** 4 KiB of control bytes (no NUL), most of them six bytes once escaped for JSON ("\u0001"); a newline last, as the SDK sends it. */
const COMMAND = Buffer.from(Array.from({ length: 4095 }, (_, i) => 1 + (i % 31))).toString('latin1') + '\n'

t.test('1,500 jobs of control bytes: every line is bounded, and the control change made before is still there', async (t) => {
  const home = join(tempDir(t), 'home')
  const host = spawnHerds(t, ['host', '--port', '0'], home)
  const url = (await host.waitFor(/host\s+(ws:\/\/\S+)/))[1]
  const node = spawnHerds(t, ['node', '--host', url, '--name', 'studio'], home, { NODE_OPTIONS: '' })
  await node.waitFor(/node\s+studio/)
  const admin = await Herds.connect({ url, token: adminToken(home) })
  t.teardown(() => admin.close())

  // The control change to keep: the run token itself is made through control.
  await admin.files.write('/.herds/control/tokens/create', JSON.stringify({ name: 'flooder', scope: 'run' }))
  const secret = (await admin.files.read('/.herds/control/tokens/flooder/secret')).toString().trim()
  const flooder = await Herds.connect({ url, token: secret })
  t.teardown(() => flooder.close())
  const studio = flooder.node('studio')

  let next = 0
  const startJobs = async (): Promise<void> => {
    while (next < JOBS) {
      next++
      await studio.spawn(COMMAND)
    }
  }
  await Promise.all(Array.from({ length: AT_ONCE }, startJobs))

  const lines = (await admin.files.read('/.herds/control/audit.jsonl')).toString().trim().split('\n')
  const longest = Math.max(...lines.map((line) => Buffer.byteLength(line)))
  t.ok(longest <= MAX_LINE_BYTES, `every line of audit.jsonl is at most ${MAX_LINE_BYTES} bytes (the longest: ${longest})`)
  const entries = lines.map((line) => JSON.parse(line))
  const jobs = entries.filter((e) => e.event === 'job' && e.token === 'flooder')
  t.equal(jobs.length, JOBS, 'every job start is recorded')
  const sha256 = createHash('sha256').update(COMMAND).digest('hex')
  t.ok(jobs.every((e) => e.ok && e.cut === true && COMMAND.startsWith(e.cmd) && e.cmdBytes === 4096 && e.cmdSha256 === sha256),
    'each with the start of its command, its whole length and its hash')

  const made = (e: { event: string, path: string, token: string, ok: boolean }): boolean => e.event === 'control' && e.path === '/.herds/control/tokens/create' && e.token === 'admin' && e.ok
  t.ok(entries.some(made), 'the token\'s making is still in audit.jsonl')
  const control = (await admin.files.read('/.herds/control/audit-control.jsonl')).toString().trim().split('\n').map((line) => JSON.parse(line))
  t.ok(control.some(made), 'and in audit-control.jsonl, where job starts never go')
  t.ok(control.every((e) => e.event === 'control'), 'which holds control changes only')

  const onDisk = readdirSync(join(home, 'host')).filter((name) => name.startsWith('audit'))
  const bytes = onDisk.reduce((sum, name) => sum + statSync(join(home, 'host', name)).size, 0)
  t.comment(`audit files: ${onDisk.join(', ')}: ${bytes} bytes for ${JOBS} jobs`)
  t.ok(bytes < 2 * 1024 * 1024, 'a couple of MiB at most')
})
