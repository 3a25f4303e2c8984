// Two mounts appending to the same new file at once both succeed, as two
// shells on one disk would (issue 10, point 9: no O_EXCL unless asked for).
import { execFile } from 'node:child_process'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { herdsUp, spawnHerds, tempDir, unmountAtTeardown } from './harness.js'

const sh = promisify(execFile)

t.test('echo >> new.log from two mounts at once: none fails', async (t) => {
  const up = await herdsUp(t)
  const second = join(tempDir(t), 'mnt')
  unmountAtTeardown(t, second)
  const mount = spawnHerds(t, ['mount', up.url, second], up.home)
  await mount.waitFor(/mount\s+/)
  await mkdir(join(up.nodeDir, 'volumes', 'logs'))
  const dirs = [join(up.nodeDir, 'volumes', 'logs'), join(second, 'nodes', up.name, 'volumes', 'logs')]
  const rounds = 60
  const failures: string[] = []
  for (let i = 0; i < rounds; i++) {
    await Promise.all(dirs.map((dir, m) => sh('sh', ['-c', `echo from-${m} >> new-${i}.log`], { cwd: dir }).catch((err: Error) => { failures.push(`round ${i}, mount ${m}: ${err.message.trim()}`) })))
  }
  t.same(failures, [], `${rounds} rounds of two appends at once`)
  // Each file is there with what was written. (That both lines survive needs
  // O_APPEND on create, which fuse-native does not pass: docs/files.md.)
  const files = await Promise.all(Array.from({ length: rounds }, (_, i) => readFile(join(dirs[0]!, `new-${i}.log`), 'utf8')))
  t.same(files.filter((text) => !/^(from-[01]\n)+$/.test(text)), [], 'every file holds whole lines from the mounts')
})
