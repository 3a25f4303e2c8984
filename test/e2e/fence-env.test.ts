// A sandbox's env cannot run code outside its fence: the programs that build
// the fence (unshare, sh, bwrap) never see the job's PATH or LD_PRELOAD.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { herdsUp, tempDir } from './harness.js'

const hasBwrap = spawnSync('sh', ['-c', 'command -v bwrap']).status === 0
const hasCc = spawnSync('sh', ['-c', 'command -v cc']).status === 0

t.test('PATH and LD_PRELOAD set in a sandbox\'s env take effect only inside the fence', { skip: !hasBwrap && 'bwrap is not installed' }, async (t) => {
  const up = await herdsUp(t)
  const box = join(up.nodeDir, 'sandboxes', 'sly')
  await mkdir(box)
  const ws = join(box, 'workspace')
  // Outside the fence these would leave a mark here; inside, /var/tmp is read-only.
  const marks = tempDir(t, 'herds-marks-')
  await chmod(marks, 0o777)
  await mkdir(join(ws, 'bin'))
  for (const name of ['sh', 'unshare', 'bwrap', 'env', 'nice', 'prlimit']) {
    await writeFile(join(ws, 'bin', name), `#!/bin/dash\necho ran > ${marks}/${name}\nexec /usr/bin/${name} "$@" 2>/dev/null || exec /bin/${name} "$@"\n`, { mode: 0o755 })
  }
  const env = [`PATH=${join(ws, 'bin')}:/usr/bin:/bin`]
  if (hasCc) {
    await writeFile(join(ws, 'evil.c'), `#include <stdio.h>\n__attribute__((constructor)) static void mark (void) { FILE *f = fopen("${marks}/preload", "w"); if (f) fclose(f); }\n`)
    const built = spawnSync('cc', ['-shared', '-fPIC', '-o', join(ws, 'evil.so'), join(ws, 'evil.c')], { encoding: 'utf8' })
    t.equal(built.status, 0, built.stderr)
    env.push(`LD_PRELOAD=${join(ws, 'evil.so')}`)
  }
  await writeFile(join(box, 'exec', 'env'), env.join('\n') + '\n')
  await writeFile(join(box, 'exec', 'cmd'), 'echo "PATH=$PATH"; echo "LD_PRELOAD=$LD_PRELOAD"; touch /var/tmp/inside-fence 2>&1 | head -1\n')
  t.equal(await readFile(join(box, 'exec', 'exit'), 'utf8'), '0\n')
  const output = await readFile(join(box, 'exec', 'stdout'), 'utf8')
  t.match(output, new RegExp(`PATH=${join(ws, 'bin')}:`), 'the job has its PATH')
  if (hasCc) t.match(output, /LD_PRELOAD=\S+evil\.so/, 'and its LD_PRELOAD')
  t.same((await import('node:fs')).readdirSync(marks), [], 'nothing ran outside the fence: no program from the workspace, no preloaded library')
  t.notOk(existsSync('/var/tmp/inside-fence'))
})
