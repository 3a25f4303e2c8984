// How a job's process starts: with the helper, nothing but 0-2; without it, /dev/null over the
// rest. The leak is real here: lmdb opens its database without close-on-exec, as in a node.
import { spawnSync } from 'node:child_process'
import { readdirSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { openNodeDb } from '../../../nodes/store.js'
import { closeFdsHelper, findProgram, planLaunch, type Launch } from '../../../venoms/run/launch.js'
import { tempDir } from '../../e2e/harness.js'

const dir = tempDir(t)
const db = openNodeDb(join(dir, 'db'))
t.teardown(() => db.close())
db.putSync('k', 'v')
const LIST = 'ls -l /proc/$$/fd'

/** The descriptors of the shell a launch starts: number → target. */
function shellDescriptors (launch: Launch): Record<string, string> {
  const stdio = launch.stdio.map((entry) => entry === 'pipe' ? 'pipe' : entry)
  const result = spawnSync(launch.file, launch.args, { stdio, encoding: 'utf8' })
  const fds: Record<string, string> = {}
  for (const line of String(result.stdout).split('\n')) {
    const match = line.match(/ (\d+) -> (.*)$/)
    if (match) fds[match[1]] = match[2]
  }
  return fds
}

const dbOpenHere = (): boolean => readdirSync('/proc/self/fd').some((fd) => {
  try { return readlinkSync(`/proc/self/fd/${fd}`).endsWith('data.mdb') } catch { return false }
})

t.test('without care, a child inherits the database (the attack this guards against)', async (t) => {
  t.ok(dbOpenHere(), 'lmdb holds its file open in this process')
  const fds = shellDescriptors({ file: '/bin/sh', args: ['-c', LIST], stdio: ['pipe', 'pipe', 'pipe'] })
  t.ok(Object.values(fds).some((target) => target.endsWith('data.mdb')), `a plain spawn leaks it: ${JSON.stringify(fds)}`)
})

t.test('through venoms/run/close-fds the job has stdin, stdout and stderr only', async (t) => {
  const helper = closeFdsHelper()
  t.ok(helper, 'npm run setup built venoms/run/close-fds')
  if (!helper) return
  const fds = shellDescriptors(planLaunch(['/bin/sh', '-c', LIST], process.env.PATH, helper))
  t.same(Object.keys(fds).sort(), ['0', '1', '2'], JSON.stringify(fds))
})

t.test('without the helper every other descriptor is /dev/null', async (t) => {
  const launch = planLaunch(['sh', '-c', LIST], process.env.PATH, null)
  t.equal(launch.file, findProgram('sh', process.env.PATH), 'the shell itself, found on PATH')
  const fds = shellDescriptors(launch)
  const others = Object.entries(fds).filter(([fd]) => Number(fd) > 2)
  t.ok(others.length > 0, 'the node\'s numbers are taken')
  t.same(others.filter(([, target]) => target !== '/dev/null'), [], JSON.stringify(fds))
})

t.test('a program that is not there is ENOENT before anything starts', async (t) => {
  t.throws(() => planLaunch(['/nonexistent/sh', '-c', 'true'], process.env.PATH), { code: 'ENOENT', message: /cannot run \/nonexistent\/sh/ })
  t.throws(() => findProgram('no-such-program-here', '/usr/bin:/bin'), { code: 'ENOENT', message: /on the PATH/ })
  t.equal(findProgram('sh', '/nonexistent:/bin'), '/bin/sh')
})
