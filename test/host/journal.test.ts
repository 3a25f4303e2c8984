// The audit log's bounds on their own, with small files so rotation comes quickly: lines cut,
// control changes kept apart from job starts, and the disk used capped.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { cutEscaped, FIELD_MAX_BYTES, Journal, MAX_LINE_BYTES, type AuditEntry } from '../../host/journal.js'
import { tempDir } from '../e2e/harness.js'

const controlBytes = (n: number): string => Buffer.from(Array.from({ length: n }, (_, i) => 1 + (i % 31))).toString('latin1')
const escapedBytes = (text: string): number => Buffer.byteLength(JSON.stringify(text)) - 2

t.test('cutEscaped keeps the longest start that fits once escaped, and never splits a character', async (t) => {
  t.equal(cutEscaped('make test\n', 512), 'make test\n', 'what fits is kept whole')
  t.equal(cutEscaped('\u0001'.repeat(100), 512), '\u0001'.repeat(85), 'six bytes each: 85 fit in 512')
  t.equal(cutEscaped('a"b', 2), 'a', 'a quote is two bytes escaped')
  t.equal(cutEscaped('a"b', 3), 'a"')
  const emoji = '😀'.repeat(200)
  const cut = cutEscaped(emoji, 10)
  t.equal(cut, '😀😀', 'four bytes each: two fit in 10, and no half of one')
  t.equal(cutEscaped('x' + '\ud800'.repeat(10), 13), 'x\ud800\ud800', 'a lone surrogate is six bytes escaped')
})

t.test('the longest line the journal can write is within MAX_LINE_BYTES', async (t) => {
  const dir = tempDir(t)
  const journal = new Journal(join(dir, 'audit.jsonl'))
  const long = controlBytes(5000)
  journal.audit({ token: 'n'.repeat(64), event: 'job', op: 'write', path: long, ok: false, error: long, cmd: long, cmdBytes: 65536, cmdSha256: 'f'.repeat(64) })
  const line = readFileSync(join(dir, 'audit.jsonl'), 'utf8').trimEnd()
  t.ok(Buffer.byteLength(line) <= MAX_LINE_BYTES, `${Buffer.byteLength(line)} bytes`)
  const entry = JSON.parse(line)
  t.equal(entry.cut, true)
  for (const field of ['path', 'error', 'cmd']) {
    t.ok(escapedBytes(entry[field]) <= FIELD_MAX_BYTES && long.startsWith(entry[field]), `${field}: the start, at most ${FIELD_MAX_BYTES} bytes escaped`)
  }
})

t.test('job starts rotate audit.jsonl, but never push control changes out of audit-control.jsonl; the disk used is capped', async (t) => {
  const dir = tempDir(t)
  const auditMaxBytes = 64 * 1024
  const controlMaxBytes = 16 * 1024
  const journal = new Journal(join(dir, 'audit.jsonl'), { auditMaxBytes, controlMaxBytes })
  const control = (path: string): AuditEntry => ({ token: 'admin', event: 'control', op: 'write', path, ok: true })
  journal.audit(control('/.herds/control/tokens/create'))
  journal.audit(control('/.herds/control/volumes/create'))
  const command = controlBytes(4096)
  for (let i = 0; i < 2000; i++) journal.audit({ token: 'flooder', event: 'job', op: 'write', path: `/nodes/studio/exec/jobs/${i}/cmd`, ok: true, cmd: command.slice(0, 512), cmdBytes: 4096, cmdSha256: '0'.repeat(64) })

  t.notMatch(journal.auditLog(), /tokens\/create/, 'audit.jsonl was rotated past the control changes')
  const kept = journal.controlLog().trim().split('\n').map((line) => JSON.parse(line))
  t.same(kept.map((e) => e.path), ['/.herds/control/tokens/create', '/.herds/control/volumes/create'], 'audit-control.jsonl still has both, and nothing else')

  // Control changes rotate too, in their own file, and the one before stays readable.
  for (let i = 0; i < 400; i++) journal.audit(control(`/.herds/control/sandboxes/create#${i}`))
  const after = journal.controlLog()
  t.match(after, /sandboxes\/create#399"/, 'the newest control change')
  t.notMatch(after, /tokens\/create/, 'the oldest go only when control changes themselves fill two files')

  const files = readdirSync(dir).sort()
  t.same(files, ['audit-control.jsonl', 'audit-control.jsonl.1', 'audit.jsonl', 'audit.jsonl.1'])
  for (const name of files) {
    const max = name.startsWith('audit-control') ? controlMaxBytes : auditMaxBytes
    t.ok(statSync(join(dir, name)).size <= max, `${name} is within its cap`)
  }
  for (const line of readFileSync(join(dir, 'audit.jsonl'), 'utf8').trim().split('\n')) {
    if (Buffer.byteLength(line) > MAX_LINE_BYTES) t.fail(`a line of ${Buffer.byteLength(line)} bytes`)
  }
})
