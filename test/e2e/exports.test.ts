// herds node --export: a directory of the machine at nodes/<n>/fs/<name>/, read-only when asked.
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { errnoOf } from './files.js'
import { HERDS_BIN, herdsUp, tempDir } from './harness.js'

const shared = tempDir(t)
mkdirSync(join(shared, 'rw'))
mkdirSync(join(shared, 'ro'))
writeFileSync(join(shared, 'ro', 'notes.txt'), 'keep me\n')
const up = await herdsUp(t, 'studio', ['--export', `work=${join(shared, 'rw')}`, '--export', `docs=${join(shared, 'ro')}:ro`])
const fs = join(up.nodeDir, 'fs')

t.test('exports appear under fs/', async (t) => {
  t.same((await readdir(fs)).sort(), ['docs', 'work'])
  t.match(up.proc.output(), /export docs = .*\(read-only\)/)
})

t.test('a read-write export takes changes that land on the machine', async (t) => {
  await writeFile(join(fs, 'work', 'new.txt'), 'written through the mount\n')
  t.equal(readFileSync(join(shared, 'rw', 'new.txt'), 'utf8'), 'written through the mount\n')
})

t.test('a read-only export reads, refuses every change with EROFS, and shows no write bits', async (t) => {
  t.equal(await readFile(join(fs, 'docs', 'notes.txt'), 'utf8'), 'keep me\n')
  t.equal(await errnoOf(writeFile(join(fs, 'docs', 'notes.txt'), 'changed')), 'EROFS')
  t.equal(await errnoOf(writeFile(join(fs, 'docs', 'new.txt'), 'x')), 'EROFS')
  t.equal(spawnSync('rm', [join(fs, 'docs', 'notes.txt')]).status, 1, 'rm fails')
  t.equal(readFileSync(join(shared, 'ro', 'notes.txt'), 'utf8'), 'keep me\n', 'nothing changed on the machine')
  t.equal(statSync(join(fs, 'docs', 'notes.txt')).mode & 0o222, 0)
  // ls -l takes the attributes that come with the listing (readdirplus): no write bits there either.
  const listed = spawnSync('ls', ['-l', join(fs, 'docs')], { encoding: 'utf8' }).stdout.split('\n').find((line) => line.endsWith(' notes.txt'))
  t.match(listed, /^-r--r--r--/, 'in a listing')
})

t.test('a bad --export is one clear line', async (t) => {
  for (const [flag, message] of [['nodir', /expected name=path/], [`x=${join(shared, 'missing')}`, /is not a directory/], ['../x=/tmp', /expected name=path/]] as const) {
    const r = spawnSync(process.execPath, [HERDS_BIN, 'node', '--host', up.url, '--name', 'other', '--export', flag], { encoding: 'utf8' })
    t.equal(r.status, 1, flag)
    t.match(r.stderr, message)
    t.notMatch(r.stderr, /\n\s+at /)
  }
})
