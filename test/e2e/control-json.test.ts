// Bad JSON written by a shell is refused at the write, where the shell prints
// it, not at close, which shells ignore (issue 11, point 9).
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { herdsUp } from './harness.js'

t.test('echo of bad JSON into control files and config.json fails in the shell', async (t) => {
  const up = await herdsUp(t)
  const control = join(up.mountpoint, '.herds', 'control')
  await mkdir(join(up.nodeDir, 'sandboxes', 'cfg'))
  const targets = [join(control, 'sandboxes', 'create'), join(control, 'volumes', 'create'), join(control, 'tokens', 'create'), join(up.nodeDir, 'sandboxes', 'cfg', 'config.json')]
  for (const file of targets) {
    for (const body of ['{not json}', '{"node": "studio", "name": }', '{"a": 1} trailing']) {
      const r = spawnSync('sh', ['-c', `echo '${body}' > '${file}'`], { encoding: 'utf8' })
      t.not(r.status, 0, `${file.slice(up.mountpoint.length)} ← ${body}: the shell sees it`)
      t.match(r.stderr, /echo: .*(I\/O error|Invalid argument)/, 'and says so (dash calls every write error an I/O error)')
    }
  }
  const log = readFileSync(join(control, 'errors.log'), 'utf8')
  t.match(log, /sandboxes\/create is not JSON: expected a key in double quotes, at character 2/, 'errors.log says where')
  t.notOk(existsSync(join(up.nodeDir, 'sandboxes', 'studio')), 'nothing made')
})
