// Started by npm start, jobs still get the user's environment: no npm_*
// variables, no node_modules/.bin of Herds first on PATH (issue 11, point 7).
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { herdsUp } from './harness.js'

t.test('node and sandbox jobs under a herds started by npm', async (t) => {
  const npmLike = {
    npm_lifecycle_event: 'start',
    npm_config_cache: '/nowhere/.npm',
    INIT_CWD: process.cwd(),
    PATH: `${join(process.cwd(), 'node_modules', '.bin')}:${process.env.PATH}`,
  }
  const up = await herdsUp(t, 'studio', [], npmLike)
  await mkdir(join(up.nodeDir, 'sandboxes', 'envbox'))
  for (const exec of [join(up.nodeDir, 'exec'), join(up.nodeDir, 'sandboxes', 'envbox', 'exec')]) {
    await writeFile(join(exec, 'cmd'), 'env\n')
    t.equal(await readFile(join(exec, 'exit'), 'utf8'), '0\n')
    const env = await readFile(join(exec, 'stdout'), 'utf8')
    t.notMatch(env, /^npm_lifecycle_event=|^npm_config_cache=\/nowhere/m, `${exec}: none of npm's variables (a sandbox sets npm_config_cache of its own)`)
    t.notMatch(env, /^INIT_CWD=/m)
    t.notMatch(env.match(/^PATH=.*$/m)?.[0] ?? '', /node_modules\/\.bin/, 'PATH without node_modules/.bin')
  }
})
