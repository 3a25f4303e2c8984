// The complete run venom through a real mount (issue 3): own jobs, stdin, ctl, env, timeout, error.
import { execFile, spawnSync } from 'node:child_process'
import { mkdir, open, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { errnoOf } from './files.js'
import { herdsUp } from './harness.js'

const up = await herdsUp(t)
const exec = join(up.nodeDir, 'exec')
const sh = (script: string): { status: number | null, stdout: string, stderr: string } =>
  spawnSync('sh', ['-c', script], { cwd: exec, encoding: 'utf8', timeout: 60_000 })
const status = async (dir = exec): Promise<Record<string, unknown>> => JSON.parse(await readFile(join(dir, 'status'), 'utf8'))
/** Processes whose command line contains `marker`, other than zombies and pgrep itself. */
const running = (marker: string): number => spawnSync('pgrep', ['-fc', marker], { encoding: 'utf8' }).stdout.trim() === '0' ? 0 : Number(spawnSync('pgrep', ['-fc', marker], { encoding: 'utf8' }).stdout.trim())

t.test('32 clients at once, each with its own job from new, each reads exactly its own output', async (t) => {
  const clients = 32
  const rounds = 32 // 1,024 runs in all
  const client = `
    for i in $(seq 1 ${rounds}); do
      id=$(cat new)
      echo "echo client-$1-run-$i; echo err-$1-$i >&2" > jobs/$id/cmd
      out=$(cat jobs/$id/stdout); err=$(cat jobs/$id/stderr); code=$(cat jobs/$id/exit)
      if [ "$out" = "client-$1-run-$i" ] && [ "$err" = "err-$1-$i" ] && [ "$code" = 0 ]; then echo ok; else echo "WRONG $1 $i: $out / $err / $code"; fi
    done`
  const results = await Promise.all(Array.from({ length: clients }, (_, n) =>
    promisify(execFile)('sh', ['-c', client, 'client', String(n)], { cwd: exec, maxBuffer: 1 << 20 })))
  const lines = results.flatMap((r) => r.stdout.trim().split('\n'))
  t.equal(lines.length, clients * rounds, `${lines.length} runs`)
  t.same(lines.filter((l) => l !== 'ok'), [], '0 wrong')
})

t.test('mkdir jobs/<name> makes a named job; a retry is refused with EEXIST, not a second job', async (t) => {
  await mkdir(join(exec, 'jobs', 'build'))
  t.equal(await errnoOf(mkdir(join(exec, 'jobs', 'build'))), 'EEXIST')
  t.equal((await status(join(exec, 'jobs', 'build'))).state, 'idle')
  await writeFile(join(exec, 'jobs', 'build', 'cmd'), 'echo built\n')
  t.equal(await readFile(join(exec, 'jobs', 'build', 'stdout'), 'utf8'), 'built\n')
  t.equal(await errnoOf(writeFile(join(exec, 'jobs', 'build', 'cmd'), 'echo again\n')), 'EBUSY', 'a job runs once')
  t.equal(await errnoOf(mkdir(join(exec, 'jobs', 'a..b/c'))), 'ENOENT')
  t.equal(await errnoOf(mkdir(join(exec, 'jobs', '-x'))), 'EINVAL')
})

t.test('stdin takes separate writes; eof closes it', async (t) => {
  const r = sh(`echo 'read a; read b; echo "$a$b"' > cmd && echo first > stdin && echo second > stdin && echo eof > ctl && cat stdout && cat exit`)
  t.equal(r.stdout, 'firstsecond\n0\n', r.stderr)
  t.equal(await errnoOf(writeFile(join(exec, 'stdin'), 'late\n')), 'EPIPE', 'stdin of an ended job')
})

t.test('timeout 1 ends sleep 30 as timed_out, leaving no sleep behind', async (t) => {
  await writeFile(join(exec, 'timeout'), '1\n')
  t.teardown(() => writeFile(join(exec, 'timeout'), '0\n'))
  const started = Date.now()
  await writeFile(join(exec, 'cmd'), 'sleep 30.123\n')
  t.equal(await readFile(join(exec, 'exit'), 'utf8'), '143\n')
  const took = Date.now() - started
  t.ok(took > 900 && took < 5000, `ended after ${took} ms`)
  t.equal((await status()).state, 'timed_out')
  t.equal(running('sleep 30.123'), 0, 'no sleep left')
})

t.test('kill ends the whole process tree; a child ignoring TERM is gone after the grace', async (t) => {
  await writeFile(join(exec, 'cmd'), 'sh -c "sleep 100.1 & sleep 100.1 & wait"\n')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.ok(running('sleep 100.1') >= 2, 'the sleeps run')
  await writeFile(join(exec, 'ctl'), 'kill\n')
  t.equal(await readFile(join(exec, 'exit'), 'utf8'), '143\n')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(running('sleep 100.1'), 0, 'no sleep left')

  await writeFile(join(exec, 'cmd'), "trap '' TERM; sleep 100.2\n")
  await new Promise((resolve) => setTimeout(resolve, 300))
  await writeFile(join(exec, 'ctl'), 'kill TERM\n')
  t.equal(await readFile(join(exec, 'exit'), 'utf8'), '137\n', 'SIGKILL after the grace')
  t.match(await status(), { state: 'killed', signal: 'SIGKILL' })
  t.equal(running('sleep 100.2'), 0)
})

t.test('env applies to the jobs started here; > replaces, >> adds', async (t) => {
  const r = sh(`echo GREETING=hello > env && echo WHO=world >> env && echo 'echo "$GREETING $WHO"' > cmd && cat stdout && cat env && : > env && cat env`)
  t.equal(r.stdout, 'hello world\nGREETING=hello\nWHO=world\n', r.stderr)
})

t.test('bad input: EINVAL where the shell sees it, the reason in error; oversized writes refused', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['ctl', 'explode\n', /ctl: EINVAL: ctl takes "kill \[SIGNAL\]", "eof" or "resize ROWS COLS"/],
    ['ctl', 'kill NOPE\n', /unknown signal after "kill"/],
    ['env', 'NOT A PAIR\n', /env: EINVAL: env line 1 is not KEY=VALUE/],
    ['timeout', '-1\n', /timeout: EINVAL: timeout is seconds/],
    ['timeout', 'soon\n', /timeout: EINVAL/],
  ]
  t.not(sh("echo 'kill NOPE' > ctl").status, 0, 'the shell sees the refusal')
  for (const [file, text, reason] of cases) {
    t.equal(await errnoOf(writeFile(join(exec, file), text)), 'EINVAL', `${file} <- ${JSON.stringify(text)}`)
    t.match(await readFile(join(exec, 'error'), 'utf8'), reason)
  }
  t.equal(await readFile(join(exec, 'timeout'), 'utf8'), '0\n', 'a refused timeout changed nothing')
  t.equal(await errnoOf(writeFile(join(exec, 'cmd'), 'x'.repeat(65 * 1024))), 'EFBIG')
  t.match(await readFile(join(exec, 'error'), 'utf8'), /cmd: EFBIG/)
  // A job that never reads: stdin is bounded, the writer is refused rather than buffered without end.
  await writeFile(join(exec, 'cmd'), 'sleep 5\n')
  t.teardown(async () => {
    await writeFile(join(exec, 'ctl'), 'kill KILL\n').catch(() => {})
    await readFile(join(exec, 'exit')) // the slot is free again for the next test
  })
  const big = Buffer.alloc(4 * 1024 * 1024, 0x61)
  t.equal(await errnoOf(writeFile(join(exec, 'stdin'), big)), 'EAGAIN')
  t.match(await readFile(join(exec, 'error'), 'utf8'), /stdin: EAGAIN: job \S+ has not read/)
})

t.test('writers racing for the slot: exactly one job starts, the others get EBUSY', async (t) => {
  await readFile(join(exec, 'exit')) // wait until the slot is free
  const handles = await Promise.all(Array.from({ length: 6 }, () => open(join(exec, 'cmd'), 'w')))
  await Promise.all(handles.map((h, i) => h.write(`sleep 0.5; echo racer ${i}\n`)))
  const closes = await Promise.all(handles.map((h) => errnoOf(h.close())))
  t.equal(closes.filter((c) => c === 'none').length, 1, closes.join(' '))
  t.equal(closes.filter((c) => c === 'EBUSY').length, 5)
  t.match(await readFile(join(exec, 'stdout'), 'utf8'), /^racer \d\n$/)
})

t.test('a command written by two processes through one descriptor is refused where the shell sees it', async (t) => {
  await writeFile(join(exec, 'cmd'), 'true\n') // leave the slot idle and known
  await readFile(join(exec, 'exit'))
  const r = sh(`printf 'echo first\\n' > part.sh 2>/dev/null; { cat /dev/null; echo 'echo first'; echo 'echo second'; } > cmd`)
  const lines = (await readFile(join(exec, 'stdout'), 'utf8'))
  // Whatever ran, it never silently lost a part: either all of it ran, or the shell saw an error.
  t.ok(lines === 'first\nsecond\n' || r.status !== 0, `ran ${JSON.stringify(lines)}, shell status ${r.status}`)
})

t.test('every exec directory explains itself', async (t) => {
  const readme = await readFile(join(exec, 'README.md'), 'utf8')
  for (const name of ['cmd', 'stdin', 'stdout', 'stderr', 'output', 'status', 'exit', 'ctl', 'env', 'timeout', 'error', 'new', 'jobs/']) {
    t.match(readme, new RegExp(`\\b${name.replace('/', '\\/')}`), name)
  }
})

t.test('a job of one\'s own takes its own env and timeout before its cmd, and refuses them after', async (t) => {
  await mkdir(join(exec, 'jobs', 'own-settings'))
  const job = join(exec, 'jobs', 'own-settings')
  await writeFile(join(job, 'env'), 'ONLY_THIS_JOB=yes\n')
  await writeFile(join(job, 'timeout'), '1\n')
  await writeFile(join(job, 'cmd'), 'echo "only=$ONLY_THIS_JOB"; sleep 30\n')
  t.equal(await readFile(join(job, 'exit'), 'utf8'), '143\n', 'ended by its timeout')
  t.match(await status(job), { state: 'timed_out' })
  t.equal(await readFile(join(job, 'stdout'), 'utf8'), 'only=yes\n')
  t.equal(await errnoOf(writeFile(join(job, 'env'), 'LATE=1\n')), 'EBUSY', 'too late once it ran')
  t.notMatch(await readFile(join(exec, 'env'), 'utf8'), /ONLY_THIS_JOB/, 'the directory\'s env is untouched')
  const id = (await readFile(join(exec, 'new'), 'utf8')).trim()
  await writeFile(join(exec, 'jobs', id, 'cmd'), 'echo "only=$ONLY_THIS_JOB"\n')
  t.equal(await readFile(join(exec, 'jobs', id, 'stdout'), 'utf8'), 'only=\n', 'nor does the next job see it')
})
