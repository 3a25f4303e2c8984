// An attacker swaps a folder for a link to somewhere else thousands of times a
// second while a client works in it: no operation may act outside the root.
import { readdirSync, readFileSync, lstatSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { readWhole } from '../../tree/bind.js'
import { LocalTree } from '../../tree/local.js'
import { getXattrAt, hasFileCalls, listXattrAt, setXattrAt } from '../../tree/native.js'
import { RENAME_EXCHANGE, RENAME_NOREPLACE, S_IFIFO, type Tree } from '../../tree/tree.js'
import { tempDir } from '../e2e/harness.js'
import { startSwapper } from './swapper.js'

const SECONDS = Number(process.env.HERDS_RACE_SECONDS ?? 20)
const VICTIMS = 20

/** What the outside folder holds: names, contents, modes and times, to compare after the attack. */
function snapshot (dir: string): string {
  return readdirSync(dir).sort().map((name) => {
    const s = lstatSync(join(dir, name))
    const content = s.isFile() ? readFileSync(join(dir, name), 'utf8') : ''
    return `${name} ${s.mode.toString(8)} ${s.mtimeMs} ${s.size} ${content}`
  }).join('\n')
}

/** Every kind of operation, once each, on names that exist both inside and outside. */
async function attackRound (tree: Tree, i: number, seen: { outside: string[], ok: number }): Promise<void> {
  const victim = `victim-${i % VICTIMS}`
  const attempts: Array<() => Promise<unknown>> = [
    async () => tree.release(`/work/new-${i}`, (await tree.create(`/work/new-${i}`, 0o644)).fh),
    () => tree.mkdir(`/work/dir-${i}`, 0o755),
    () => tree.unlink(`/work/${victim}`),
    () => tree.rename(`/work/${victim}`, `/archive/${victim}-${i}`),
    () => tree.rename(`/archive/in-${i % VICTIMS}`, `/work/${victim}`),
    () => tree.symlink('x', `/work/link-${i}`),
    () => tree.utimens(`/work/${victim}`, { sec: 0, nsec: 0 }, null),
    () => tree.chmod(`/work/${victim}`, 0o777),
    () => tree.truncate(`/work/${victim}`, 0),
    () => tree.rmdir(`/work/empty-${i % VICTIMS}`),
    () => tree.mknod(`/work/fifo-${i}`, S_IFIFO | 0o644),
    () => tree.setxattr(`/work/${victim}`, 'user.planted', Buffer.from('x'), 0),
    () => tree.removexattr(`/work/${victim}`, 'user.mark'),
    async () => { if (Buffer.from(await tree.getxattr(`/work/${victim}`, 'user.mark')).toString() === 'OUTSIDE') seen.outside.push(`getxattr at ${i}`) },
    () => tree.rename(`/work/${victim}`, `/archive/x-${victim}-${i}`, RENAME_NOREPLACE),
    () => tree.rename(`/archive/in-${i % VICTIMS}`, `/work/${victim}`, RENAME_EXCHANGE),
    async () => { const names = await tree.readdir('/work'); if (names.includes('outside-only')) seen.outside.push(`readdir at ${i}`) },
    async () => { const s = await tree.getattr('/work/outside-only'); seen.outside.push(`getattr at ${i}: ${s.size}`) },
    async () => { if ((await readWhole(tree, `/work/${victim}`)).toString().includes('OUTSIDE')) seen.outside.push(`read at ${i}`) },
  ]
  for (const attempt of attempts) await attempt().then(() => { seen.ok++ }, () => {})
}

/** Puts back what the inside folder had, so every round has something to act on. */
function replenish (root: string): void {
  const work = ['work', 'bait'].map((n) => join(root, n)).find((p) => !lstatSync(p).isSymbolicLink())!
  for (let v = 0; v < VICTIMS; v++) {
    try { writeFileSync(join(work, `victim-${v}`), 'inside', { flag: 'wx' }) } catch { /* still there */ }
    try { mkdirSync(join(work, `empty-${v}`)) } catch { /* still there */ }
    try { writeFileSync(join(root, 'archive', `in-${v}`), 'inside', { flag: 'wx' }) } catch { /* still there */ }
  }
}

// Half the time with each walk beneath the root: the kernel's (openat2), and the one name by name where it is missing.
for (const kernelWalk of [true, false]) {
  t.test(`${SECONDS / 2} s of a folder swapped for a link to outside, walked ${kernelWalk ? 'by the kernel' : 'name by name'}: nothing outside is touched`, async (t) => {
    const root = tempDir(t)
    const outside = tempDir(t)
    for (let v = 0; v < VICTIMS; v++) {
      writeFileSync(join(outside, `victim-${v}`), `OUTSIDE ${v}`)
      mkdirSync(join(outside, `empty-${v}`))
      writeFileSync(join(outside, `in-${v}`), `OUTSIDE ${v}`)
    }
    writeFileSync(join(outside, 'outside-only'), 'OUTSIDE')
    const marked = hasFileCalls() ? readdirSync(outside).filter((name) => name.startsWith('victim-')) : []
    for (const name of marked) await setXattrAt(join(outside, name), 'user.mark', Buffer.from('OUTSIDE'), 0)
    const before = snapshot(outside)
    mkdirSync(join(root, 'work'))
    mkdirSync(join(root, 'archive'))
    symlinkSync(outside, join(root, 'bait'))
    replenish(root)

    const tree = new LocalTree(root, { kernelWalk })
    const swapper = startSwapper(join(root, 'work'), join(root, 'bait'), SECONDS / 2)
    t.teardown(() => { swapper.child.kill('SIGKILL') })
    const seen = { outside: [] as string[], ok: 0 }
    const deadline = Date.now() + SECONDS / 2 * 1000
    // Four clients at once, as a mount's parallel requests would be.
    await Promise.all([0, 1, 2, 3].map(async (worker) => {
      for (let i = worker; Date.now() < deadline; i += 4) {
        await attackRound(tree, i, seen)
        if (worker === 0 && i % 20 === 0) replenish(root)
      }
    }))
    const swaps = await swapper.swaps
    t.ok(marked.length === VICTIMS || !hasFileCalls(), 'the outside files carry an attribute to guard')
    t.ok(swaps > 1000, `the folder and the link traded places ${swaps} times`)
    t.ok(seen.ok > 1000, `${seen.ok} operations succeeded inside while it did`)
    t.same(seen.outside, [], 'no listing, stat or read showed what is outside')
    t.equal(snapshot(outside), before, 'outside: no file made, removed, renamed, truncated, chmodded or touched')
    for (const name of marked) {
      const names = (await listXattrAt(join(outside, name), 65536) as Buffer).toString().split('\0').filter(Boolean)
      t.same(names, ['user.mark'], `${name}: no attribute set or removed outside`)
      t.equal((await getXattrAt(join(outside, name), 'user.mark', 65536)).toString(), 'OUTSIDE')
    }
    const pulled = readdirSync(join(root, 'archive')).filter((name) => readFileSync(join(root, 'archive', name), 'utf8').includes('OUTSIDE'))
    t.same(pulled, [], 'no outside file was pulled inside')
  })
}
