/**
 * The file contract of issue 2, as a user sees it: the same assertions for a
 * FUSE mount and for the remote tree.
 */
import { createHash, randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { errnoOf, readUntil, type Files } from './files.js'

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

/** Runs a command in the default slot and waits for its end; returns the exit file. */
async function run (files: Files, exec: string, cmd: string): Promise<string> {
  await files.write(`${exec}/cmd`, cmd + '\n')
  return (await files.read(`${exec}/exit`)).toString()
}

export function execContract (t: Test, files: Files, node: string, scratch: string): void {
  const exec = `/nodes/${node}/exec`

  t.test('the root shows README.md, nodes/ and .herds/', async (t) => {
    const names = await files.list('/')
    t.ok(names.includes('README.md') && names.includes('nodes') && names.includes('.herds'), names.join(' '))
    t.match((await files.read('/README.md')).toString(), /exec\/cmd/)
    t.same(await files.list('/nodes'), [node])
    const info = JSON.parse((await files.read(`/nodes/${node}/info.json`)).toString())
    t.equal(info.name, node)
    t.equal(info.os, process.platform)
    const status = JSON.parse((await files.read(`/nodes/${node}/status.json`)).toString())
    t.equal(status.online, true)
    const catalog = JSON.parse((await files.read('/.herds/catalog/nodes.json')).toString())
    t.same(catalog.map((n: { name: string, online: boolean }) => [n.name, n.online]), [[node, true]])
  })

  t.test('a command runs; stdout, stderr, exit and status tell the truth', async (t) => {
    t.equal(await run(files, exec, 'uname -s; echo oops >&2; exit 3'), '3\n')
    t.equal((await files.read(`${exec}/stdout`)).toString(), (await import('node:os')).type() + '\n')
    t.equal((await files.read(`${exec}/stderr`)).toString(), 'oops\n')
    t.equal((await files.read(`${exec}/cmd`)).toString(), 'uname -s; echo oops >&2; exit 3\n')
    const status = JSON.parse((await files.read(`${exec}/status`)).toString())
    t.equal(status.state, 'exited')
    t.equal(status.exitCode, 3)
    t.equal(status.signal, null)
    t.type(status.pid, 'number')
    t.ok(status.durationMs >= 0 && Date.parse(status.endedAt) >= Date.parse(status.startedAt))
    t.same((await files.list(`${exec}/jobs/${status.id}`)).sort(), ['cmd', 'ctl', 'env', 'exit', 'output', 'status', 'stderr', 'stdin', 'stdout', 'timeout', 'tty'])
    t.equal((await files.read(`${exec}/jobs/${status.id}/stderr`)).toString(), 'oops\n')
  })

  t.test('a job killed by a signal exits 128+N and says killed', async (t) => {
    t.equal(await run(files, exec, 'echo before; kill -TERM $$; echo after'), '143\n')
    const status = JSON.parse((await files.read(`${exec}/status`)).toString())
    t.equal(status.state, 'killed')
    t.equal(status.signal, 'SIGTERM')
    t.equal((await files.read(`${exec}/stdout`)).toString(), 'before\n')
  })

  t.test('stdout streams: the first line arrives long before the job ends', async (t) => {
    await files.write(`${exec}/cmd`, 'for i in 1 2 3 4; do echo line $i; sleep 0.5; done\n')
    const started = Date.now()
    const arrivals: Array<[number, string]> = []
    await files.stream(`${exec}/stdout`, (chunk) => arrivals.push([Date.now() - started, chunk.toString()]))
    const ended = Date.now() - started
    t.equal(arrivals.map(([, text]) => text).join(''), 'line 1\nline 2\nline 3\nline 4\n')
    t.ok(arrivals.length >= 3, `output came in ${arrivals.length} pieces, not all at once`)
    t.ok(arrivals[0][0] < ended - 1000, `first line at ${arrivals[0][0]} ms, end at ${ended} ms`)
    // Read again after the end: the whole output from the start.
    t.equal((await files.read(`${exec}/stdout`)).toString(), 'line 1\nline 2\nline 3\nline 4\n')
  })

  t.test('megabytes of binary and text output arrive byte-exact', async (t) => {
    const data = randomBytes(5 * 1024 * 1024)
    const source = join(scratch, `random-${files.kind}`)
    writeFileSync(source, data)
    t.equal(await run(files, exec, `cat ${source}`), '0\n')
    t.equal(sha(await files.read(`${exec}/stdout`)), sha(data), 'binary stdout matches')
    t.equal(await run(files, exec, 'seq 1 300000'), '0\n')
    const text = await files.read(`${exec}/stdout`)
    t.equal(text.length, Buffer.byteLength(Array.from({ length: 300000 }, (_, i) => `${i + 1}\n`).join('')))
    t.equal(text.toString().split('\n').at(-2), '300000')
  })

  t.test('output interleaves stdout and stderr in arrival order', async (t) => {
    t.equal(await run(files, exec, 'echo a; sleep 0.1; echo b >&2; sleep 0.1; echo c'), '0\n')
    t.equal((await files.read(`${exec}/output`)).toString(), 'a\nb\nc\n')
  })

  t.test('bad input gets a clear errno, and nothing hangs', async (t) => {
    t.equal(await errnoOf(files.write(`${exec}/status`, 'x')), 'EACCES', 'writing a read-only file')
    t.equal(await errnoOf(files.write(`/nodes/${node}/info.json`, 'x')), 'EACCES')
    t.equal(await errnoOf(files.read(`${exec}/nope`)), 'ENOENT', 'unknown file')
    t.equal(await errnoOf(files.read('/nodes/nobody/info.json')), 'ENOENT', 'unknown node')
    t.equal(await errnoOf(files.write(`${exec}/cmd`, '\n')), 'EINVAL', 'empty command')
    t.equal(await errnoOf(files.write(`${exec}/cmd`, 'a\0b\n')), 'EINVAL', 'NUL in a command')
    const before = JSON.parse((await files.read(`${exec}/status`)).toString()).id
    t.equal(await errnoOf(files.write(`${exec}/cmd`, 'x'.repeat(70 * 1024))), 'EFBIG', 'an oversized command')
    t.equal(JSON.parse((await files.read(`${exec}/status`)).toString()).id, before, 'and no part of it ran')
    t.equal(await errnoOf(files.mkdir(`/nodes/${node}/newdir`)), 'EACCES', 'mkdir where the node allows none')
    await files.write(`${exec}/cmd`, 'sleep 2\n')
    t.equal(await errnoOf(files.write(`${exec}/cmd`, 'echo second\n')), 'EBUSY', 'cmd while the job runs')
    t.equal((await files.read(`${exec}/exit`)).toString(), '0\n')
    t.equal(await errnoOf(files.write(`${exec}/cmd`, 'echo third\n')), 'none', 'free again after the end')
  })

  t.test('volumes/ keeps files like a disk', async (t) => {
    const dir = `/nodes/${node}/volumes/${files.kind}`
    await files.mkdir(dir)
    const data = randomBytes(3 * 1024 * 1024 + 17)
    await files.write(`${dir}/blob`, data)
    t.equal(sha(await files.read(`${dir}/blob`)), sha(data), 'megabytes round-trip byte-exact')
    await files.write(`${dir}/blob`, 'short')
    t.equal((await files.read(`${dir}/blob`)).toString(), 'short', 'rewriting truncates')
    t.same(await files.list(dir), ['blob'])
    await files.rename(`${dir}/blob`, `${dir}/renamed`)
    t.same(await files.list(dir), ['renamed'], 'rename within a volume')
    await files.remove(`${dir}/renamed`)
    t.same(await files.list(dir), [])
  })

  t.test('a terminal job: keystrokes in, the terminal\'s bytes out, resize, Ctrl-C, eof', async (t) => {
    const id = (await files.read(`${exec}/new`)).toString().trim()
    const job = `${exec}/jobs/${id}`
    t.equal(await errnoOf(files.write(`${job}/tty`, '{"rows":0}')), 'EINVAL', 'a size of 0 rows is refused')
    t.equal(await errnoOf(files.write(`${job}/tty`, '{"rows":30,"colour":true}')), 'EINVAL', 'so is a key it does not know')
    await files.write(`${job}/tty`, '{"rows":30,"cols":100}\n')
    t.same(JSON.parse((await files.read(`${job}/tty`)).toString()), { rows: 30, cols: 100, term: 'xterm-256color' })
    await files.write(`${job}/cmd`, 'PS1="ready> " sh -i\n')
    t.equal(await errnoOf(files.write(`${job}/tty`, '{}')), 'EBUSY', 'tty is set before the cmd')
    const status = JSON.parse((await files.read(`${job}/status`)).toString())
    t.match(status, { state: 'running', tty: { rows: 30, cols: 100, term: 'xterm-256color' } }, 'status says it is a terminal, and its size')
    await readUntil(files, `${job}/stdout`, /ready> $/)
    await files.write(`${job}/stdin`, 'stty size; echo "$TERM"; printf "\\033[31mred\\n"; echo oops >&2\n')
    // Each line is typed at the next prompt, as a person would: typed ahead, the shell's echo and its output interleave otherwise.
    const first = await readUntil(files, `${job}/stdout`, /oops\r\nready> $/)
    t.match(first, /\r\n30 100\r\nxterm-256color\r\n\x1b\[31mred\r\noops\r\n/, 'the size, TERM, a colour escape intact, stderr joined, the terminal\'s CR LF')
    await files.write(`${job}/ctl`, 'resize 40 120\n')
    t.match(JSON.parse((await files.read(`${job}/status`)).toString()).tty, { rows: 40, cols: 120 })
    await files.write(`${job}/stdin`, 'stty size\n')
    await readUntil(files, `${job}/stdout`, /\r\n40 120\r\nready> $/)
    await files.write(`${job}/stdin`, 'sleep 100\n')
    await readUntil(files, `${job}/stdout`, /sleep 100\r\n/)
    await files.write(`${job}/stdin`, '\x03')
    // Ctrl-C also throws away input not yet read: type only once the shell is back at its prompt.
    await readUntil(files, `${job}/stdout`, /\^C[\s\S]*ready> $/)
    await files.write(`${job}/stdin`, 'echo "still $((6*7))"\n')
    await readUntil(files, `${job}/stdout`, /still 42\r\n/)
    t.pass('Ctrl-C ended sleep, not the shell')
    await files.write(`${job}/ctl`, 'eof\n')
    t.equal((await files.read(`${job}/exit`)).toString(), '0\n', 'eof typed Ctrl-D: the shell ended')
    t.equal((await files.read(`${job}/stderr`)).toString(), '', 'stderr stays empty: it went to the terminal')
    t.equal((await files.read(`${job}/output`)).toString(), (await files.read(`${job}/stdout`)).toString(), 'output is the terminal\'s bytes')
    t.equal(await errnoOf(files.write(`${exec}/ctl`, 'resize 0 10\n')), 'EINVAL', 'a bad size is refused')
    await run(files, exec, 'true')
    t.equal(await errnoOf(files.write(`${exec}/ctl`, 'resize 24 80\n')), 'EINVAL', 'a job on pipes has no terminal to resize')
    t.match((await files.read(`${exec}/error`)).toString(), /has no terminal/)
  })
}
