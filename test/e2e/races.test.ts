// A sandbox job swaps a folder of its workspace for a link to somewhere else
// while a user works in that folder through the mount with rm and mv: the
// node must act only inside the workspace (issue 10, point 1).
import { execFile } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { SWAP_SCRIPT } from '../tree/swapper.js'
import { herdsUp, tempDir } from './harness.js'

const sh = promisify(execFile)
const SECONDS = 8

t.test('rm and mv through the mount while a fenced job swaps the folder for a link: nothing outside is touched', async (t) => {
  const up = await herdsUp(t)
  const victims = tempDir(t, 'herds-victims-')
  for (let i = 0; i < 20; i++) writeFileSync(join(victims, `v${i}.dat`), `VICTIM ${i}`)
  writeFileSync(join(victims, 'secret'), 'VICTIM secret')
  const box = join(up.nodeDir, 'sandboxes', 'attacker')
  await mkdir(box)
  const ws = join(box, 'workspace')
  await mkdir(join(ws, 'out'))
  await mkdir(join(ws, 'archive'))
  await writeFile(join(ws, 'swap.py'), SWAP_SCRIPT)
  // The job makes the bait itself, on the node, and swaps it with out/ until the time is up.
  await writeFile(join(box, 'exec', 'cmd'), `ln -s ${victims} bait && python3 swap.py out bait ${SECONDS}\n`)

  const deadline = Date.now() + SECONDS * 1000
  let rounds = 0
  while (Date.now() < deadline) {
    for (let i = 0; i < 5; i++) await writeFile(join(ws, 'out', `mine${i}.dat`), 'mine').catch(() => {})
    await sh('sh', ['-c', 'rm -f out/*.dat; mv out/* archive/; ls out >/dev/null'], { cwd: ws }).catch(() => {})
    rounds++
  }
  const exit = await readFile(join(box, 'exec', 'exit'), 'utf8')
  const output = await readFile(join(box, 'exec', 'output'), 'utf8')
  t.equal(exit, '0\n', 'the swap loop ran to its end')
  t.ok(Number(output.trim()) > 1000, `the job swapped out/ and the link ${output.trim()} times while the user made ${rounds} rounds of rm and mv`)
  t.same(readdirSync(victims).sort(), [...Array.from({ length: 20 }, (_, i) => `v${i}.dat`), 'secret'].sort(), 'every file outside is still there')
  t.equal(readFileSync(join(victims, 'secret'), 'utf8'), 'VICTIM secret')
  const pulled = readdirSync(join(ws, 'archive')).filter((name) => readFileSync(join(ws, 'archive', name), 'utf8').includes('VICTIM'))
  t.same(pulled, [], 'nothing from outside was pulled into the workspace')
})
