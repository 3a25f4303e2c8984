// The libfuse3 binding itself, through a real mount with a raw handler: a reply goes to its request
// once (a repeated or made-up id finds nothing), an interrupt reaches JavaScript with the request's
// id, malformed replies become EIO rather than a crash or a hung caller, and a session ends cleanly.
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { loadBinding, type Binding, type Session } from '../../mount/native.js'

const run = (cmd: string): Promise<{ code: number | string, stderr: string }> =>
  promisify(execFile)('sh', ['-c', cmd]).then(() => ({ code: 0, stderr: '' }), (err: { code: number, signal?: string, stderr: string }) => ({ code: err.signal ?? err.code, stderr: err.stderr }))

let binding: Binding | undefined
try { binding = loadBinding() } catch (err) { t.comment(`skipped: ${(err as Error).message}`) }

const OP = { LOOKUP: 0, GETATTR: 2, OPENDIR: 18, READDIR: 19, RELEASEDIR: 20, READDIRPLUS: 29, INTERRUPT: 30, EXIT: 31 }
const dirAttr = Float64Array.of(1, 0o40755, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

t.test('a raw session: replies, interrupts, malformed replies and the end', { skip: !binding && !process.env.CI && 'no binding (in CI this fails: setup must build it)' }, async (t) => {
  const native = binding!
  const dir = mkdtempSync(join(tmpdir(), 'herds-native-'))
  const seen = { twice: [] as boolean[], waiting: -1, interrupted: -1 }
  let ended!: () => void
  const exited = new Promise<void>((resolve) => { ended = resolve })
  let session: Session | undefined
  let listing: string[] = []
  const handler = (op: number, id: number, n: number[], name?: string): void => {
    const s = session!
    if (op === OP.EXIT) { native.destroy(s); return ended() }
    if (op === OP.INTERRUPT) { seen.interrupted = id; native.replyErr(s, id, 4); return }
    if (op === OP.GETATTR) return void native.replyAttr(s, id, dirAttr, 0)
    if (op === OP.OPENDIR) return void native.replyOpen(s, id, 7, 0)
    if (op === OP.RELEASEDIR) return void native.replyErr(s, id, 0)
    // Three names, one offset: the binding must refuse, not read past the arrays.
    if ((op === OP.READDIR || op === OP.READDIRPLUS) && listing.length === 0) return void native.replyDir(s, id, n[2], op === OP.READDIRPLUS, ['a', 'b', 'c'], Float64Array.of(1), new Float64Array(3), new Float64Array(14))
    // A name the binding would have to cut short (or that hides a NUL) must fail the listing, never list another name.
    if (op === OP.READDIR || op === OP.READDIRPLUS) return void native.replyDir(s, id, n[2], op === OP.READDIRPLUS, listing, Float64Array.of(1), new Float64Array(3), new Float64Array(14))
    if (op === OP.LOOKUP && name === 'slow') { seen.waiting = id; return } // answered only when interrupted
    if (op === OP.LOOKUP && name === 'twice') {
      seen.twice.push(native.replyErr(s, id, 2), native.replyErr(s, id, 2), native.replyErr(s, id + 65536, 2))
      return
    }
    native.replyErr(s, id, 38)
  }
  session = native.mount(dir, 'fsname=herds-test,subtype=herds', 1 << 20, 1 << 20, handler)
  t.teardown(async () => {
    await run(`fusermount3 -uz ${dir} 2>/dev/null || umount -l ${dir} 2>/dev/null`)
    rmSync(dir, { recursive: true, force: true })
  })

  const twice = await run(`stat ${dir}/twice`)
  t.match(twice.stderr, /No such file or directory/)
  t.same(seen.twice, [true, false, false], 'the first reply is taken; the same id again, or another generation of its slot, finds nothing')

  const slow = await run(`timeout -s INT 1 stat ${dir}/slow`)
  t.not(slow.code, 0, 'the interrupted stat ended')
  t.equal(seen.interrupted, seen.waiting, 'the interrupt named the waiting request')
  t.equal(native.replyErr(session, seen.waiting, 0), false, 'a late reply to the interrupted request finds nothing')

  const listed = await run(`ls ${dir}`)
  t.match(listed.stderr, /Input\/output error/, 'a listing whose arrays disagree is EIO')
  for (const name of ['n'.repeat(1100), 'ok\0../../etc']) {
    listing = [name]
    const bad = await run(`ls ${dir}`)
    t.match(bad.stderr, /Input\/output error/, `a listing of a name of ${name.length} characters with${name.includes('\0') ? '' : 'out'} a NUL is EIO`)
  }
  listing = []
  t.equal(native.replyErr(session, 123456789, 0), false, 'a made-up id finds nothing')
  t.equal(native.notifyInode(session, 424242, 0, 0), true, 'an invalidation of an inode the kernel does not hold is queued and harmless')

  native.unmount(session)
  await exited
  t.throws(() => native.replyErr(session!, 1, 0), /the session is gone/, 'after the end, a call says so')
})
