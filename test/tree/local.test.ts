// A local tree on a real temporary directory: it behaves like the disk and keeps to its root.
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { readWhole, writeWhole } from '../../tree/bind.js'
import type { HerdsError } from '../../tree/errno.js'
import { LocalTree } from '../../tree/local.js'
import { MAX_DIRPLUS, O_RDWR, S_IFDIR, S_IFLNK, S_IFMT } from '../../tree/tree.js'
import { tempDir, tmpfsAt } from '../e2e/harness.js'

const root = tempDir(t)
const outside = tempDir(t)
writeFileSync(join(outside, 'secret'), 'do not read')
const tree = new LocalTree(root)

t.test('files are created, written at offsets, read, renamed and removed', async (t) => {
  const { fh } = await tree.create('/a.txt', 0o644)
  t.equal(await tree.write('/a.txt', fh, 0, Buffer.from('hello world')), 11)
  t.equal(await tree.write('/a.txt', fh, 6, Buffer.from('there')), 5)
  await tree.release('/a.txt', fh)
  t.equal(readFileSync(join(root, 'a.txt'), 'utf8'), 'hello there')
  await tree.mkdir('/d', 0o755)
  t.equal((await tree.getattr('/d')).mode & S_IFMT, S_IFDIR)
  await tree.rename('/a.txt', '/d/b.txt')
  t.equal((await readWhole(tree, '/d/b.txt')).toString(), 'hello there')
  await tree.truncate('/d/b.txt', 5)
  t.equal((await tree.getattr('/d/b.txt')).size, 5)
  await tree.unlink('/d/b.txt')
  await tree.rmdir('/d')
  t.same(await tree.readdir('/'), [])
  await t.rejects(tree.getattr('/d'), { code: 'ENOENT', message: 'ENOENT: /d' }, 'errors name the tree path, not the disk path')
})

t.test('create answers with the new file\'s attributes, as getattr gives them', async (t) => {
  const made = await tree.create('/made.txt', 0o640)
  t.teardown(() => tree.release('/made.txt', made.fh))
  const { mtimeMs, atimeMs, ctimeMs, ...seen } = await tree.getattr('/made.txt')
  t.match(made.stat, { ...seen, mode: 0o100640, size: 0 }, 'mode as given, empty, the same inode')
  t.equal(made.stat?.ino, statSync(join(root, 'made.txt')).ino, 'the node\'s own inode number')
  // Another client made it a moment before: opened, and its attributes left to getattr.
  const again = await tree.create('/made.txt', 0o600)
  t.equal(again.stat, null, 'a file that was there already comes without attributes')
  await tree.release('/made.txt', again.fh)
  t.equal(statSync(join(root, 'made.txt')).mode & 0o777, 0o640, 'and its mode is left as it was')
})

t.test('links are kept as written; the node never follows one out of the root', async (t) => {
  symlinkSync(outside, join(root, 'out'))
  symlinkSync(join(outside, 'secret'), join(root, 'secret-link'))
  await t.rejects(tree.getattr('/out/secret'), { code: 'EACCES' }, 'through a linked directory')
  await t.rejects(tree.open('/out/secret', 0), { code: 'EACCES' })
  await t.rejects(tree.create('/out/new', 0o644), { code: 'EACCES' }, 'nor creates there')
  await t.rejects(tree.open('/secret-link', 0), { code: 'ELOOP' }, 'a link itself is never opened')
  await t.rejects(tree.truncate('/secret-link', 0), { code: 'ELOOP' })
  await t.rejects(tree.chmod('/secret-link', 0o777), { code: 'ENOTSUP' })
  t.equal(await tree.readlink('/secret-link'), join(outside, 'secret'), 'a link made on the node shows its target as it is')
  t.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'do not read')
  await tree.symlink('/etc/passwd', '/pw')
  t.equal(await tree.readlink('/pw'), '/etc/passwd', 'an absolute link is made, as on a disk')
  await tree.mkdir('/d2', 0o755)
  await tree.symlink('../../etc/passwd', '/d2/pw')
  t.equal(await tree.readlink('/d2/pw'), '../../etc/passwd', 'so is one that climbs')
  await t.rejects(tree.open('/pw', 0), { code: 'ELOOP' }, 'but the node opens none of them')
  await tree.symlink(outside, '/d2/far')
  await t.rejects(tree.getattr('/d2/far/secret'), { code: 'EACCES' }, 'nor goes through one made through the tree that leads out')
  await t.rejects(tree.readdir('/d2/far'), { code: 'EACCES' })
  await tree.symlink('../a-target', '/d2/ok')
  t.equal(await tree.readlink('/d2/ok'), '../a-target')
  await t.rejects(tree.open('/d2/ok', O_RDWR), { code: 'ELOOP' })
  await tree.symlink('d2', '/inside')
  t.same((await tree.readdir('/inside')).sort(), ['far', 'ok', 'pw'], 'a linked folder inside the tree is followed')
})

t.test('a way out through a link tells nothing of what is there; links that stay inside resolve as the kernel would', async (t) => {
  symlinkSync('/etc', join(root, 'probe'))
  for (const path of ['/probe/passwd', '/probe/no-such-file', '/probe/passwd/x', '/probe']) {
    const code = await tree.getattr(`${path}/y`).then(() => 'ok', (err: { code: string }) => err.code)
    t.equal(code, 'EACCES', `${path}/y: the same refusal whether or not it exists outside`)
  }
  mkdirSync(join(root, 'p', 'q'), { recursive: true })
  writeFileSync(join(root, 'p', 'here'), 'here')
  symlinkSync('q/../..', join(root, 'p', 'up')) // q, then up twice: the root
  symlinkSync('../../..', join(root, 'p', 'q', 'out')) // one more than its depth
  t.same((await tree.readdir('/p/up/p')).sort(), ['here', 'q', 'up'], 'a link with ".." after a name lands where the kernel would')
  await t.rejects(tree.readdir('/p/q/out'), { code: 'EACCES' }, 'one that climbs above the root is refused')
  t.equal((await tree.getattr('/p/up/p/here')).size, 4)
})

t.test('a whole-file write through open/write/flush/release', async (t) => {
  mkdirSync(join(root, 'w'))
  writeFileSync(join(root, 'w', 'f'), '')
  await writeWhole(tree, '/w/f', Buffer.from('abc'))
  t.equal(readFileSync(join(root, 'w', 'f'), 'utf8'), 'abc')
})

t.test('writes sent without waiting land in the order sent: the last of those over one byte wins', async (t) => {
  writeFileSync(join(root, 'order'), '')
  const fh = await tree.open('/order', O_RDWR)
  t.teardown(() => tree.release('/order', fh))
  const wrong: string[] = []
  for (let round = 0; round < 200; round++) {
    // Side by side in the thread pool, whichever thread came last would win.
    await Promise.all([...'abcdefgh'].map((c) => tree.write('/order', fh, 0, Buffer.from(c))))
    const got = readFileSync(join(root, 'order'), 'utf8')
    if (got !== 'h') wrong.push(got)
  }
  t.same(wrong, [], 'every round ends with the last write')
})

t.test('on a full disk, writes sent without waiting leave no hole: none lands past one that failed', async (t) => {
  const small = join(outside, 'small')
  tmpfsAt(t, small, 'size=4m')
  const full = new LocalTree(small)
  writeFileSync(join(small, 'big'), '')
  const fh = await full.open('/big', O_RDWR)
  t.teardown(() => full.release('/big', fh))
  const piece = 128 * 1024
  let results: Array<PromiseSettledResult<number>> = []
  let size = 0
  let written = 0
  for (let round = 0; round < 10 && size === written; round++) {
    await full.truncate('/big', 0)
    results = await Promise.allSettled(Array.from({ length: 48 }, (_, i) => full.write('/big', fh, i * piece, Buffer.alloc(piece, 'x'))))
    size = statSync(join(small, 'big')).size
    written = results.reduce((sum, r) => sum + (r.status === 'fulfilled' ? r.value : 0), 0)
  }
  t.ok(results.some((r) => r.status === 'rejected' && (r.reason as HerdsError).code === 'ENOSPC'), 'ENOSPC is told')
  t.equal(size, written, `the file is as long as what was written (${size} bytes), with no hole`)
})

t.test('a FIFO is refused at once, not waited on; a linked directory is not listed', async (t) => {
  execFileSync('mkfifo', [join(root, 'fifo')])
  await t.rejects(tree.open('/fifo', 0), { code: 'EACCES' })
  await t.rejects(tree.truncate('/fifo', 0), { code: 'EACCES' })
  await t.rejects(tree.readdir('/out'), { code: 'EACCES' }, 'readdir through a link that leads out')
})

t.test('both walks beneath the root, the kernel\'s (openat2) and the one name by name, answer alike', async (t) => {
  const here = tempDir(t)
  mkdirSync(join(here, 'p', 'q'), { recursive: true })
  writeFileSync(join(here, 'p', 'here'), 'here')
  symlinkSync('q/../..', join(here, 'p', 'up'))
  symlinkSync('../../..', join(here, 'p', 'q', 'out'))
  symlinkSync('/etc', join(here, 'abs'))
  symlinkSync('p', join(here, 'inside'))
  symlinkSync('loop', join(here, 'loop'))
  const cases = ['/p/up/p/here', '/p/q/out/x', '/abs/passwd', '/abs/none/x', '/inside/here', '/inside/q', '/p/none/x', '/p/here/x', '/loop/x']
  const answers = async (tree: LocalTree): Promise<string[]> => Promise.all(cases.map((path) =>
    tree.getattr(path).then((s) => `${path} ok ${s.size}`, (err: { code: string }) => `${path} ${err.code}`)))
  const kernel = await answers(new LocalTree(here))
  const names = await answers(new LocalTree(here, { kernelWalk: false }))
  t.same(names, kernel, 'the same answer to every path')
  t.same(kernel, ['/p/up/p/here ok 4', '/p/q/out/x EACCES', '/abs/passwd EACCES', '/abs/none/x EACCES', '/inside/here ok 4',
    `/inside/q ok ${kernel[5].split(' ')[2]}`, '/p/none/x ENOENT', '/p/here/x ENOTDIR', '/loop/x ELOOP'])
})

t.test('utimens, chmod and truncate answer with the attributes after the change, as a stat then says', async (t) => {
  const tree = new LocalTree(root)
  writeFileSync(join(root, 'answered.txt'), 'twelve bytes')
  const timed = await tree.utimens('/answered.txt', { sec: 981173106, nsec: 5 }, { sec: 981173107, nsec: 7 })
  t.match(timed, { atimeNsec: 5, mtimeNsec: 7, size: 12 })
  const moded = await tree.chmod('/answered.txt', 0o600)
  t.equal(moded && moded.mode & 0o7777, 0o600)
  const cut = await tree.truncate('/answered.txt', 3)
  t.equal(cut && cut.size, 3)
  t.same(cut, await tree.getattr('/answered.txt'), 'the last answer is what getattr says')
  const folder = await tree.chmod('/', 0o755)
  t.equal(folder && folder.mode & S_IFMT, S_IFDIR, 'the root answers as the folder')
})

t.test('readdirplus: each name with what getattr says of it; a link as itself; a link out of the root lists nothing', async (t) => {
  mkdirSync(join(root, 'plus', 'sub'), { recursive: true })
  writeFileSync(join(root, 'plus', 'f.txt'), 'twelve bytes')
  symlinkSync(join(outside, 'secret'), join(root, 'plus', 'away'))
  const entries = new Map(await tree.readdirplus('/plus'))
  t.same([...entries.keys()].sort(), ['away', 'f.txt', 'sub'])
  for (const name of entries.keys()) t.same(entries.get(name), await tree.getattr(`/plus/${name}`), `${name}: as getattr says`)
  t.equal(entries.get('away')!.mode & S_IFMT, S_IFLNK, 'the link is not followed')
  await t.rejects(tree.readdirplus('/out'), { code: 'EACCES' }, 'nor is a linked folder that leads out')
})

t.test(`readdirplus of a folder past ${MAX_DIRPLUS.toLocaleString('en')} names: the rest come without attributes, to be asked one by one`, async (t) => {
  const dir = join(root, 'huge')
  mkdirSync(dir)
  execFileSync('sh', ['-c', `cd "$1" && seq ${MAX_DIRPLUS + 10} | sed s/^/f/ | xargs touch`, 'sh', dir])
  const entries = await tree.readdirplus('/huge')
  t.equal(entries.length, MAX_DIRPLUS + 10, 'every name')
  t.equal(entries.filter(([, stat]) => stat === null).length, 10, 'attributes for the first ones only')
})
