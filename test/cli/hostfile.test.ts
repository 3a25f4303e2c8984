// Client commands find a host started on any port with the same HERDS_HOME
// (issue 11, point 3), and forget it once it is gone.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { HERDS_BIN, herdsUp } from '../e2e/harness.js'

/** Runs herds as a user would: only HERDS_HOME set, no URL, no token. */
function herds (home: string, args: string[]): { status: number | null, stdout: string, stderr: string } {
  const env: Record<string, string | undefined> = { ...process.env, HERDS_HOME: home }
  delete env.HERDS_URL
  delete env.HERDS_TOKEN
  return spawnSync(process.execPath, [HERDS_BIN, ...args], { env, encoding: 'utf8', timeout: 60_000 })
}

t.test('herds status and run find a host on port 0 through HERDS_HOME; a stopped one is forgotten', async (t) => {
  const up = await herdsUp(t, 'anyport')
  t.notMatch(up.url, /:7077$/, `the host is on another port (${up.url})`)
  const status = herds(up.home, ['status'])
  t.equal(status.status, 0, status.stderr)
  t.match(status.stdout, /anyport/, 'status lists the node')
  t.equal(herds(up.home, ['run', '--', 'echo', 'found']).stdout, 'found\n', 'run reaches it')
  const file = join(up.home, 'host', 'url.json')
  t.ok(existsSync(file), 'the host left its URL in HERDS_HOME/host/url.json')
  await up.proc.stop()
  t.notOk(existsSync(file), 'and removed it when it stopped')
})

t.test('a URL left by a host that was killed is ignored', async (t) => {
  const up = await herdsUp(t, 'killed')
  up.proc.signal('SIGKILL')
  await up.proc.exited
  t.ok(existsSync(join(up.home, 'host', 'url.json')), 'a host killed with -9 leaves its URL behind')
  const status = herds(up.home, ['status'])
  t.not(status.status, 0)
  t.match(status.stderr, /127\.0\.0\.1:7077/, 'it falls back to the default instead of a dead host\'s URL')
})
