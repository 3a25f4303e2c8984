// The examples run as the README says (issue 6): the agent loop with only the mount, and the SDK
// build script, against a real `herds up`.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { herdsUp } from './harness.js'

const root = resolve(fileURLToPath(import.meta.url), '../../..')
const up = await herdsUp(t, 'examplenode')

t.test('examples/agent-loop.mjs: reads the docs, makes a sandbox, runs a script, reads its result, all through the mount', async (t) => {
  const run = spawnSync(process.execPath, ['examples/agent-loop.mjs', up.mountpoint], { cwd: root, encoding: 'utf8', timeout: 60_000 })
  t.equal(run.status, 0, run.stderr)
  t.match(run.stdout, /> read \{"path":"README.md"\}\n# Herds/)
  t.match(run.stdout, /> run \{"exec":"nodes\/examplenode\/sandboxes\/agent\/exec","command":"sh count.sh"\}\nexit 0\nwords: 7/)
  t.match(run.stdout, /done: 8 tool calls, all through the mount\n$/)
  t.ok(existsSync(join(up.nodeDir, 'sandboxes', 'agent', 'workspace', 'result.txt')), 'the job\'s result is in the workspace')
})

t.test('examples/build.mjs: a build on the chosen node, its output streamed and collected', async (t) => {
  const run = spawnSync(process.execPath, ['examples/build.mjs', '--node', up.name], {
    cwd: root,
    env: { ...process.env, HERDS_URL: up.url, HERDS_HOME: up.home, HERDS_TOKEN: '' },
    encoding: 'utf8',
    timeout: 60_000,
  })
  t.equal(run.status, 0, run.stderr)
  t.match(run.stdout, /^building on examplenode\ncc -O2 -o hello hello\.c\nmake: exit 0 in \d+ ms\n\.\/hello says: hello from the herd\n/)
  t.notOk(existsSync(join(up.nodeDir, 'sandboxes', 'build-example')), 'it cleans up its sandbox')
})
