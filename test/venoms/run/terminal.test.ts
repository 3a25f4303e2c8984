// Terminal jobs on a runner with a real lmdb store and real pseudo-terminals: the limits and ends
// every job has hold for them too, with small limits so the edges show.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { lmdbJobStore, openNodeDb } from '../../../nodes/store.js'
import type { Job } from '../../../venoms/run/job.js'
import { Runner } from '../../../venoms/run/runner.js'
import { execDir } from '../../../venoms/run/tree.js'
import { writeWhole } from '../../../tree/bind.js'
import { SyntheticTree } from '../../../tree/synthetic.js'
import { tempDir } from '../../e2e/harness.js'

type Limits = ConstructorParameters<typeof Runner>[0]['limits']

function makeRunner (t: Test, dir: string, limits: Limits = {}): { runner: Runner, close: () => Promise<void> } {
  const db = openNodeDb(join(dir, 'db'))
  const runner = new Runner({ cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, shell: '/bin/sh', outputDir: join(dir, 'jobs'), store: lmdbJobStore(db), limits })
  let closed = false
  const close = async (): Promise<void> => { if (!closed) { closed = true; await db.close() } }
  t.teardown(async () => { await runner.stopAll(); await close() })
  return { runner, close }
}

/** Starts `cmd` in a job of its own on a terminal of 24×80. */
async function onTerminal (runner: Runner, cmd: string): Promise<Job> {
  const job = await runner.allocate()
  job.preset.tty = { rows: 24, cols: 80, term: 'xterm-256color' }
  await runner.run(job, cmd)
  return job
}

async function output (job: Job): Promise<string> {
  let out = ''
  for (let offset = 0; ;) {
    const chunk = await job.read('stdout', offset, 65536)
    if (chunk.length === 0) return out
    out += Buffer.from(chunk).toString()
    offset += chunk.length
  }
}

/** The output so far, without waiting for more. */
async function soFar (job: Job): Promise<string> {
  const bytes = job.bytes().stdout
  return bytes === 0 ? '' : Buffer.from(await job.read('stdout', 0, bytes)).toString()
}

t.test('keystrokes a job does not read are bounded: EAGAIN, not memory without end', async (t) => {
  const { runner } = makeRunner(t, tempDir(t), { maxPendingStdin: 64 * 1024 })
  const job = await onTerminal(runner, 'stty -icanon -echo; sleep 30') // reads nothing
  await new Promise((resolve) => setTimeout(resolve, 300))
  const piece = Buffer.alloc(16 * 1024, 0x61)
  let taken = 0
  let refusal: Error | undefined
  while (taken < 16 * 1024 * 1024) {
    try {
      taken += await job.writeStdin(piece)
    } catch (err) {
      refusal = err as Error
      break
    }
  }
  t.match(refusal, { code: 'EAGAIN', message: /has not read the \d+ bytes already typed at its terminal/ })
  t.ok(taken < 1024 * 1024, `refused after ${taken} bytes (the kernel's terminal buffer and the 64 KiB bound)`)
  job.kill('SIGKILL')
  await job.waitEnd()
})

t.test('the output cap, the timeout and kill end terminal jobs as they end others', async (t) => {
  const { runner } = makeRunner(t, tempDir(t), { maxOutputBytes: 1000, killGraceMs: 500 })
  const loud = await onTerminal(runner, 'head -c 5000 /dev/zero | tr "\\0" x; echo')
  await loud.waitEnd()
  t.match(await output(loud), /^x{1000}\n\[herds: output truncated: this job wrote more than 1000 bytes\]\n$/)
  t.match(loud.record, { state: 'exited', truncated: true })

  const slow = await runner.allocate()
  slow.preset.tty = { rows: 24, cols: 80, term: 'xterm-256color' }
  slow.preset.timeout = 0.5
  await runner.run(slow, 'sleep 30')
  await slow.waitEnd()
  t.match(slow.record, { state: 'timed_out', signal: 'SIGTERM' })

  const stubborn = await onTerminal(runner, "trap '' TERM; sleep 30")
  await new Promise((resolve) => setTimeout(resolve, 200))
  stubborn.kill('SIGTERM')
  await stubborn.waitEnd()
  t.match(stubborn.record, { state: 'killed', signal: 'SIGKILL' }, 'SIGKILL after the grace')
  t.equal(stubborn.exitStatus(), 137)
})

t.test('a terminal job whose shell leaves a process behind still ends, and so does the process', async (t) => {
  const { runner } = makeRunner(t, tempDir(t))
  const job = await onTerminal(runner, 'sleep 60 & echo "left $!"')
  const started = Date.now()
  await job.waitEnd()
  t.ok(Date.now() - started < 5000, `ended in ${Date.now() - started} ms`)
  const pid = Number((await output(job)).match(/left (\d+)/)![1])
  await new Promise((resolve) => setTimeout(resolve, 300))
  // Gone, or a zombie waiting for a parent that reaps (this machine's init may not).
  const state = (): string => { try { return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1][0] } catch { return 'gone' } }
  t.match(state(), /^(gone|Z)$/, 'the terminal hung up: SIGHUP ended the process left behind')
})

t.test('the terminal is kept in the record: a node that restarts shows it on the lost job', async (t) => {
  const dir = tempDir(t)
  const first = makeRunner(t, dir)
  await first.runner.load()
  const job = await onTerminal(first.runner, 'echo before; sleep 30')
  job.resize({ rows: 50, cols: 132 })
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.match(await soFar(job), /before/)
  await first.close() // the node "crashes" with the job recorded as running
  const second = makeRunner(t, dir)
  t.teardown(async () => { job.kill('SIGKILL'); await job.waitEnd() })
  await second.runner.load()
  t.match(second.runner.get(job.id)!.record, { state: 'lost', tty: { rows: 50, cols: 132, term: 'xterm-256color' } })
})

t.test('resize: a job on pipes has no terminal; an ended terminal job takes it and does nothing', async (t) => {
  const { runner } = makeRunner(t, tempDir(t))
  const plain = await runner.runInSlot('true')
  t.throws(() => plain.resize({ rows: 10, cols: 10 }), { code: 'EINVAL', message: /has no terminal/ })
  const ended = await onTerminal(runner, 'true')
  await ended.waitEnd()
  t.doesNotThrow(() => ended.resize({ rows: 10, cols: 10 }))
})

t.test('kill reaches what an interactive shell started in process groups of its own', async (t) => {
  const { runner } = makeRunner(t, tempDir(t), { killGraceMs: 1000 })
  const job = await onTerminal(runner, 'bash --norc --noprofile -i')
  await job.writeStdin(Buffer.from('sleep 1234 & echo "bg=$!"; sleep 1235\r'))
  let pid = 0
  for (let tries = 0; tries < 50 && !pid; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    pid = Number((await soFar(job)).match(/bg=(\d+)/)?.[1] ?? 0)
  }
  t.ok(pid > 0, 'the background job started')
  job.kill('SIGTERM')
  await job.waitEnd()
  await new Promise((resolve) => setTimeout(resolve, 300))
  const state = (): string => { try { return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1][0] } catch { return 'gone' } }
  t.match(state(), /^(gone|Z)$/, 'the background job, in a group of its own, ended with the shell')
})

/** Gone, or a zombie waiting for a parent that reaps (this machine's init may not). */
function endedState (pid: number): string {
  try { return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1][0] } catch { return 'gone' }
}

/** Waits for `pattern` in a job's output so far (5 s at most). */
async function seen (job: Job, pattern: RegExp): Promise<RegExpMatchArray | null> {
  for (let tries = 0; tries < 50; tries++) {
    const match = (await soFar(job)).match(pattern)
    if (match) return match
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return null
}

t.test('what an interactive shell leaves running when it exits is ended with the job, not left where kill cannot reach', async (t) => {
  const { runner } = makeRunner(t, tempDir(t), { killGraceMs: 500 })
  const job = await onTerminal(runner, 'bash --norc --noprofile -i')
  await job.writeStdin(Buffer.from('trap "" HUP; sleep 4321 & echo "bg=$!"\r'))
  const pid = Number((await seen(job, /bg=(\d+)/))?.[1] ?? 0)
  t.ok(pid > 0, 'the background job started')
  await job.writeStdin(Buffer.from('exit\r'))
  await job.waitEnd()
  t.match(job.record, { state: 'exited' })
  await new Promise((resolve) => setTimeout(resolve, 1200))
  t.match(endedState(pid), /^(gone|Z)$/, 'SIGHUP, then SIGKILL after the grace, to the rest of its session')
})

t.test('a terminal the job hung up on is written to no more: its descriptor number may be another file\'s', async (t) => {
  const { runner } = makeRunner(t, tempDir(t))
  const job = await onTerminal(runner, "trap '' HUP; exec </dev/null >/dev/null 2>&1; sleep 30")
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.equal(job.record.state, 'running', 'the shell lives on, without its terminal')
  // Another job opens files now; one of them may take the number node-pty let go of.
  const other = await runner.runInSlot('sleep 1; echo victim-output')
  await t.rejects(job.writeStdin(Buffer.from('INJECTED\n')), { code: 'EPIPE', message: /hung up/ })
  t.doesNotThrow(() => job.resize({ rows: 30, cols: 90 }), 'a resize does nothing')
  await other.waitEnd()
  t.equal(Buffer.from(await other.read('stdout', 0, 1000)).toString(), 'victim-output\n', 'nothing reached the other job')
  job.kill('SIGKILL')
  await job.waitEnd()
})

t.test('floods through ctl: thousands of kill lines cost one search of the session; eof is bounded as keystrokes are', async (t) => {
  const { runner } = makeRunner(t, tempDir(t), { maxPendingStdin: 64 * 1024, killGraceMs: 500 })
  const tree = new SyntheticTree(execDir(runner))
  const job = await onTerminal(runner, "trap '' TERM CONT; stty -icanon -echo; for i in 1 2 3 4 5 6 7 8; do sleep 60 & done; sleep 60")
  await new Promise((resolve) => setTimeout(resolve, 300))
  const ctl = `/jobs/${job.id}/ctl`
  let lag = 0
  let last = Date.now()
  const probe = setInterval(() => { const now = Date.now(); lag = Math.max(lag, now - last); last = now }, 10)
  try {
    await writeWhole(tree, ctl, Buffer.from('kill CONT\n'.repeat(6000)))
    await new Promise((resolve) => setTimeout(resolve, 100))
  } finally {
    clearInterval(probe)
  }
  t.ok(lag < 2000, `the node's loop was held at most ${lag} ms by 6,000 kill lines (before: about 15 s)`)
  let refused: { code?: string } | undefined
  for (let i = 0; i < 40 && !refused; i++) await writeWhole(tree, ctl, Buffer.from('eof\n'.repeat(16 * 1024))).catch((err: { code?: string }) => { refused = err })
  t.match(refused, { code: 'EAGAIN' }, 'eof is refused past the bound on untaken keystrokes')
  job.kill('SIGKILL')
  await job.waitEnd()
})

t.test('terminal jobs on a node are bounded: past the most, EAGAIN, and plain jobs still run', async (t) => {
  const { runner } = makeRunner(t, tempDir(t), { maxTerminals: 2 })
  const a = await onTerminal(runner, 'sleep 30')
  const b = await onTerminal(runner, 'sleep 30')
  const c = await runner.allocate()
  c.preset.tty = { rows: 24, cols: 80, term: 'xterm-256color' }
  await t.rejects(runner.run(c, 'sleep 30'), { code: 'EAGAIN', message: /2 terminal jobs run on this node already/ })
  const plain = await runner.runInSlot('echo plain')
  await plain.waitEnd()
  t.equal(plain.record.exitCode, 0)
  a.kill('SIGKILL')
  await a.waitEnd()
  await new Promise((resolve) => setTimeout(resolve, 200))
  const d = await onTerminal(runner, 'echo again')
  await d.waitEnd()
  t.match(await output(d), /again/, 'one ended: another may start')
  b.kill('SIGKILL')
  await b.waitEnd()
})
