// Volumes behave like a disk through the mount: cp -r, diff -r, tar, fresh reads after a change on the node.
import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { mkdir, readdir, readFile, rmdir, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { errnoOf } from './files.js'
import { herdsUp, tempDir } from './harness.js'

const up = await herdsUp(t)
const volumes = join(up.nodeDir, 'volumes')
const onDisk = join(up.home, 'nodes', up.name, 'volumes')
/** How long (ms) until `check` holds, polled every 20 ms; Infinity past a second. */
async function seen (check: () => Promise<boolean>): Promise<number> {
  const started = Date.now()
  while (!(await check())) {
    if (Date.now() - started > 1000) return Infinity
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return Date.now() - started
}
const sh = (script: string, cwd = volumes): ReturnType<typeof spawnSync> => spawnSync('sh', ['-c', script], { cwd, encoding: 'utf8', timeout: 120_000 })

t.test('cp -r of 1,000 files into a volume, then diff -r: identical', async (t) => {
  const src = join(tempDir(t), 'tree')
  for (let d = 0; d < 20; d++) {
    mkdirSync(join(src, `dir${d}`), { recursive: true })
    for (let f = 0; f < 50; f++) writeFileSync(join(src, `dir${d}`, `file${f}.txt`), `dir ${d} file ${f}\n`.repeat(f + 1))
  }
  await mkdir(join(volumes, 'copies'))
  const cp = sh(`cp -r ${src} copies/tree`)
  t.equal(cp.status, 0, String(cp.stderr))
  const diff = sh(`diff -r ${src} copies/tree`)
  t.equal(diff.status, 0, String(diff.stdout).slice(0, 400))
  t.equal(sh('find copies/tree -type f | wc -l').stdout.toString().trim(), '1000')
})

t.test('a tar round trip through a volume is identical', async (t) => {
  const src = join(tempDir(t), 'src')
  mkdirSync(join(src, 'a', 'b'), { recursive: true })
  writeFileSync(join(src, 'a', 'b', 'data.bin'), Buffer.alloc(300_000, 7))
  writeFileSync(join(src, 'readme'), 'tar me\n')
  await mkdir(join(volumes, 'tars'))
  t.equal(sh(`tar -C ${src} -cf tars/x.tar .`).status, 0)
  await mkdir(join(volumes, 'tars', 'out'))
  const x = sh('tar -C tars/out -xf tars/x.tar')
  t.equal(x.status, 0, String(x.stderr))
  t.equal(sh(`diff -r ${src} tars/out`).status, 0)
})

t.test('a file changed on the node\'s disk reads fresh through the mount', async (t) => {
  await mkdir(join(volumes, 'fresh'))
  writeFileSync(join(onDisk, 'fresh', 'note.txt'), 'first version\n')
  t.equal(await readFile(join(volumes, 'fresh', 'note.txt'), 'utf8'), 'first version\n')
  writeFileSync(join(onDisk, 'fresh', 'note.txt'), 'second, longer version\n')
  t.equal(await readFile(join(volumes, 'fresh', 'note.txt'), 'utf8'), 'second, longer version\n', 'at once')
})

t.test('what the node changes by itself shows through the mount within a second: sizes, new files, removals', async (t) => {
  const dir = join(volumes, 'fresh')
  const sizeOf = async (): Promise<number> => (await stat(join(dir, 'note.txt'))).size
  t.equal(await sizeOf(), 23, 'seen once, so kept')
  t.ok((await readdir(dir)).includes('note.txt'))
  writeFileSync(join(onDisk, 'fresh', 'note.txt'), 'third\n')
  writeFileSync(join(onDisk, 'fresh', 'added-on-node.txt'), 'new\n')
  const sized = await seen(async () => (await sizeOf()) === 6)
  t.ok(sized <= 1000, `the new size within ${sized} ms`)
  const listed = await seen(async () => (await readdir(dir)).includes('added-on-node.txt'))
  t.ok(listed <= 1000, `the new file listed within ${listed} ms`)
  rmSync(join(onDisk, 'fresh', 'added-on-node.txt'))
  const gone = await seen(async () => !(await readdir(dir)).includes('added-on-node.txt'))
  t.ok(gone <= 1000, `its removal within ${gone} ms`)
})

t.test('a name made through the mount and at once removed or made a folder on the node: the mount sees that within a second', async (t) => {
  // The kernel keeps a real file's name even while it changes; only the node's report may drop it.
  const dir = join(volumes, 'swapped')
  await mkdir(dir)
  await writeFile(join(dir, 'a.txt'), 'made through the mount\n')
  await writeFile(join(dir, 'b.txt'), 'made through the mount\n')
  t.equal((await stat(join(dir, 'a.txt'))).size, 23)
  rmSync(join(onDisk, 'swapped', 'a.txt'))
  rmSync(join(onDisk, 'swapped', 'b.txt'))
  mkdirSync(join(onDisk, 'swapped', 'b.txt'))
  const gone = await seen(async () => await errnoOf(stat(join(dir, 'a.txt'))) === 'ENOENT')
  t.ok(gone <= 1000, `the removed name is gone within ${gone} ms`)
  const folder = await seen(async () => (await stat(join(dir, 'b.txt')).catch(() => undefined))?.isDirectory() === true)
  t.ok(folder <= 1000, `the name now a folder shows as one within ${folder} ms`)
})

t.test('a folder\'s times and a file\'s mode set on the node, and a folder put in another\'s place, show through the mount within a second', async (t) => {
  const dir = join(volumes, 'attrs')
  await mkdir(join(dir, 'old'), { recursive: true })
  await writeFile(join(dir, 'old', 'kept.txt'), 'in the old folder\n')
  await writeFile(join(dir, 'mode.txt'), 'x')
  await new Promise((resolve) => setTimeout(resolve, 1100)) // settled: what is seen now is kept
  t.equal((await stat(join(dir, 'old', 'kept.txt'))).size, 18, 'seen once, so kept')
  await stat(join(dir, 'mode.txt'))
  utimesSync(join(onDisk, 'attrs', 'old'), new Date(1e12), new Date(1e12))
  chmodSync(join(onDisk, 'attrs', 'mode.txt'), 0o600)
  const timed = await seen(async () => (await stat(join(dir, 'old'))).mtimeMs === 1e12)
  t.ok(timed <= 1000, `the folder's new time within ${timed} ms`)
  const moded = await seen(async () => ((await stat(join(dir, 'mode.txt'))).mode & 0o777) === 0o600)
  t.ok(moded <= 1000, `the file's new mode within ${moded} ms`)
  t.equal(await readFile(join(dir, 'old', 'kept.txt'), 'utf8'), 'in the old folder\n', 'the names below the folder still stand')

  // Another folder renamed over it (it is emptied first, as rename(2) needs): its names are the new folder's.
  mkdirSync(join(onDisk, 'attrs', 'new'))
  writeFileSync(join(onDisk, 'attrs', 'new', 'other.txt'), 'in the new folder\n')
  rmSync(join(onDisk, 'attrs', 'old', 'kept.txt'))
  renameSync(join(onDisk, 'attrs', 'new'), join(onDisk, 'attrs', 'old'))
  const swapped = await seen(async () => await errnoOf(stat(join(dir, 'old', 'kept.txt'))) === 'ENOENT' && (await readdir(join(dir, 'old'))).includes('other.txt'))
  t.ok(swapped <= 1000, `the new folder's names within ${swapped} ms`)
  t.equal(await readFile(join(dir, 'old', 'other.txt'), 'utf8'), 'in the new folder\n')
})

t.test('a change on the node to a volume shows where a sandbox mounts it, too', async (t) => {
  await mkdir(join(up.nodeDir, 'sandboxes', 'viewer'))
  await writeFile(join(up.nodeDir, 'sandboxes', 'viewer', 'config.json'), JSON.stringify({ volumes: { data: 'fresh' } }))
  const seenThere = join(up.nodeDir, 'sandboxes', 'viewer', 'workspace', 'data', 'note.txt')
  const before = (await stat(seenThere)).size
  writeFileSync(join(onDisk, 'fresh', 'note.txt'), 'a much longer fourth version of the note\n')
  const started = Date.now()
  while ((await stat(seenThere)).size === before && Date.now() - started < 1000) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal((await stat(seenThere)).size, 41, `the new size within ${Date.now() - started} ms`)
  t.equal(await readFile(seenThere, 'utf8'), 'a much longer fourth version of the note\n')
})

t.test('volume names are checked; rmdir of a non-empty volume is refused', async (t) => {
  t.equal(await errnoOf(mkdir(join(volumes, 'tab\there'))), 'EINVAL')
  t.equal(await errnoOf(mkdir(join(volumes, '.hidden'))), 'EINVAL')
  t.equal(await errnoOf(rmdir(join(volumes, 'fresh'))), 'ENOTEMPTY')
  t.ok(execFileSync('ls', [join(volumes, 'fresh')], { encoding: 'utf8' }).includes('note.txt'))
})

const hasSqlite = spawnSync('sh', ['-c', 'command -v sqlite3']).status === 0
t.test('a sqlite3 database made in a volume through the mount answers a query', { skip: !hasSqlite && 'sqlite3 is not installed' }, async (t) => {
  await mkdir(join(volumes, 'db'))
  const r = sh("sqlite3 db/app.db 'create table t(x); insert into t values (41),(1); select sum(x) from t;'")
  t.equal(r.status, 0, String(r.stderr))
  t.equal(String(r.stdout).trim(), '42')
  t.equal(String(sh("sqlite3 db/app.db 'select count(*) from t;'").stdout).trim(), '2', 'and again from a new process')
})

t.test('file times set through the mount land on the node: utimes with two times, cp -p', async (t) => {
  await mkdir(join(volumes, 'times'))
  writeFileSync(join(onDisk, 'times', 'f'), 'x')
  await utimes(join(volumes, 'times', 'f'), 1_000_000_000, 1_500_000_000)
  const s = statSync(join(onDisk, 'times', 'f'))
  t.equal(Math.round(s.atimeMs / 1000), 1_000_000_000, 'access time')
  t.equal(Math.round(s.mtimeMs / 1000), 1_500_000_000, 'modification time')
  const src = join(tempDir(t), 'old.txt')
  writeFileSync(src, 'old')
  await utimes(src, 1_200_000_000, 1_300_000_000)
  t.equal(sh(`cp -p ${src} times/copy.txt`).status, 0)
  t.equal(Math.round(statSync(join(onDisk, 'times', 'copy.txt')).mtimeMs / 1000), 1_300_000_000, 'cp -p keeps the modification time')
})

t.test('du through the mount counts the blocks the node\'s disk uses', async (t) => {
  await mkdir(join(volumes, 'du'))
  execFileSync('truncate', ['-s', '64M', join(onDisk, 'du', 'sparse')]) // takes no blocks
  for (let i = 0; i < 40; i++) writeFileSync(join(onDisk, 'du', `small${i}`), 'x') // a block each, not a byte
  writeFileSync(join(onDisk, 'du', 'whole'), Buffer.alloc(3 * 1024 * 1024, 7))
  const kib = (dir: string): number => Number(execFileSync('du', ['-sk', dir], { encoding: 'utf8' }).split('\t')[0])
  const mount = kib(join(volumes, 'du'))
  const disk = kib(join(onDisk, 'du'))
  t.ok(Math.abs(mount - disk) <= 8, `du -sk: ${mount} KiB through the mount, ${disk} KiB on the node`)
})

t.test('the top of volumes/ holds only folders: no file, no link, none moved there', async (t) => {
  t.equal(sh('ln -s / evil').status, 1, 'ln -s at the top is refused')
  t.match(String(sh('ln -s / evil').stderr), /Operation not permitted/)
  t.equal(sh('echo x > loose.txt').status, 2, 'so is a file')
  await mkdir(join(volumes, 'holder'))
  t.equal(sh('ln -s / holder/l && mv holder/l top').status, 1, 'and a link moved up from inside a volume')
  t.notOk(existsSync(join(onDisk, 'top')) || existsSync(join(onDisk, 'evil')), 'nothing of them on the node')
  t.equal(sh('mkdir holder/sub && mv holder/sub promoted').status, 0, 'a folder may move to the top: it becomes a volume')
})

const hasRsync = spawnSync('sh', ['-c', 'command -v rsync']).status === 0
t.test('cp -a and rsync -a keep the times of files and folders', { skip: !hasRsync && 'rsync is not installed' }, async (t) => {
  const src = join(tempDir(t), 'src')
  // Enough folders that rsync comes back to the first ones more than a second after it made them.
  for (let i = 0; i < 40; i++) {
    mkdirSync(join(src, `d${i}`, 'sub'), { recursive: true })
    writeFileSync(join(src, `d${i}`, 'big'), Buffer.alloc(300_000, i))
    writeFileSync(join(src, `d${i}`, 'sub', 'small'), `${i}\n`)
  }
  execFileSync('sh', ['-c', 'find . -depth -exec touch -h -d 2001-02-03T04:05:06 {} +'], { cwd: src })
  await mkdir(join(volumes, 'times-tools'))
  const copies = {
    rsync: `rsync -a ${src}/ rsync/`,
    cp: `cp -a ${src} cp`,
  }
  for (const [name, script] of Object.entries(copies)) {
    const r = sh(script, join(volumes, 'times-tools'))
    t.equal(r.status, 0, `${name}: ${String(r.stderr)}`)
    const onNode = join(onDisk, 'times-tools', name)
    const wrong = String(execFileSync('find', [onNode, '-mindepth', '1', '!', '-newermt', '2001-02-03T04:05:05', '-o', '-mindepth', '1', '-newermt', '2001-02-03T04:05:07'], { encoding: 'utf8' })).split('\n').filter(Boolean)
    t.same(wrong, [], `${name}: every file and folder on the node has its source's time`)
  }
})

t.test('tar x, touch -m and touch -a set the one time they are given and keep the other', async (t) => {
  const src = join(tempDir(t), 'src')
  for (let i = 0; i < 6; i++) {
    mkdirSync(join(src, `d${i}`, 'sub'), { recursive: true })
    writeFileSync(join(src, `d${i}`, 'sub', 'small'), `${i}\n`)
  }
  execFileSync('sh', ['-c', 'find . -depth -exec touch -h -d 2001-02-03T04:05:06 {} +'], { cwd: src })
  await mkdir(join(volumes, 'untar'))
  const r = sh(`tar cf - -C ${src} . | tar xf - -C untar`)
  t.equal(r.status, 0, String(r.stderr))
  const wrong = execFileSync('find', [join(onDisk, 'untar'), '-mindepth', '1', '!', '-newermt', '2001-02-03T04:05:05', '-o', '-mindepth', '1', '-newermt', '2001-02-03T04:05:07'], { encoding: 'utf8' }).split('\n').filter(Boolean)
  t.same(wrong, [], 'tar x: every file and folder has its time from the archive')
  const file = join(volumes, 'untar', 'one')
  writeFileSync(file, 'x')
  await utimes(file, 1_000_000_000, 1_100_000_000)
  t.equal(sh(`touch -m -d 2005-06-07T08:09:10Z ${file}`).status, 0)
  let s = statSync(join(onDisk, 'untar', 'one'))
  t.equal(Math.round(s.mtimeMs / 1000), Date.parse('2005-06-07T08:09:10Z') / 1000, 'touch -m sets the modification time')
  t.equal(Math.round(s.atimeMs / 1000), 1_000_000_000, 'and keeps the access time')
  t.equal(sh(`touch -a -d 2006-06-07T08:09:10Z ${file}`).status, 0)
  s = statSync(join(onDisk, 'untar', 'one'))
  t.equal(Math.round(s.atimeMs / 1000), Date.parse('2006-06-07T08:09:10Z') / 1000, 'touch -a sets the access time')
  t.equal(Math.round(s.mtimeMs / 1000), Date.parse('2005-06-07T08:09:10Z') / 1000, 'and keeps the modification time')
  const before = Date.now()
  t.equal(sh(`touch ${file}`).status, 0)
  t.ok(statSync(join(onDisk, 'untar', 'one')).mtimeMs >= before - 2000, 'plain touch sets now')
})
