// Jobs made by new or mkdir that never get a cmd (issue 11, point 6): they expire, their readers end, and
// how many may wait at once is bounded. A runner on a real lmdb store and real processes, with short limits.
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { lmdbJobStore, openNodeDb } from '../../../nodes/store.js'
import { Runner, type RunnerOptions } from '../../../venoms/run/runner.js'
import { tempDir } from '../../e2e/harness.js'

// The runner's timers are unref'd (a node has its connection to keep it alive): this file keeps itself alive.
const alive = setInterval(() => {}, 1000)
t.teardown(() => clearInterval(alive))

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** How `promise` settles, or "still waiting" after `ms`. */
function settled (promise: Promise<unknown>, ms: number): Promise<unknown> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('still waiting'), ms)
    promise.then(() => 'ended', (err: unknown) => err).then((outcome) => { clearTimeout(timer); resolve(outcome) })
  })
}

/** A runner over the store in `dir`; close() closes its database (a node that stops, or crashes). */
function makeRunner (dir: string, limits: RunnerOptions['limits']): { runner: Runner, store: ReturnType<typeof lmdbJobStore>, close: () => Promise<void> } {
  const db = openNodeDb(join(dir, 'db'))
  const store = lmdbJobStore(db)
  const runner = new Runner({ cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, shell: '/bin/sh', outputDir: join(dir, 'jobs'), store, limits })
  return { runner, store, close: () => db.close() }
}

async function started (t: Test, limits: RunnerOptions['limits']): Promise<ReturnType<typeof makeRunner>> {
  const made = makeRunner(tempDir(t), limits)
  await made.runner.load()
  t.teardown(async () => { await made.runner.stopAll(); await made.close() })
  return made
}

t.test('a job given no cmd in time expires: readers waiting on exit and stdout end with ETIMEDOUT, and a late cmd is refused', async (t) => {
  const { runner, store } = await started(t, { expireIdleMs: 400 })
  const job = await runner.allocate()
  const exit = job.waitExit()
  const stdout = job.read('stdout', 0, 100)
  const outcome = await settled(exit, 10_000)
  t.match(outcome, { code: 'ETIMEDOUT', message: new RegExp(`job ${job.id} was allocated at ${job.record.createdAt} and given no cmd within 0.4 s`) }, 'exit ends with the reason')
  await t.rejects(stdout, { code: 'ETIMEDOUT' }, 'so does a waiting read of stdout')
  await t.rejects(job.read('output', 0, 100), { code: 'ETIMEDOUT' }, 'and a read after')
  t.match(job.record, { state: 'expired', startedAt: null, endedAt: String, error: /no cmd within 0\.4 s/ })
  t.match(store.get(job.id), { state: 'expired' }, 'the record says so')
  await t.rejects(runner.run(job, 'echo late'), { code: 'EBUSY', message: /expired; take a new job/ }, 'its cmd comes too late')
})

t.test('a job given its cmd in time runs past the expiry time', async (t) => {
  const { runner } = await started(t, { expireIdleMs: 300 })
  const job = await runner.allocate('named')
  await runner.run(job, 'sleep 0.6; echo done')
  t.equal(await job.waitExit(), 0)
  t.equal(job.record.state, 'exited')
})

t.test('expiry survives a restart: an idle job past its time at load expires then, a younger one on its remaining time', async (t) => {
  const dir = tempDir(t)
  const first = makeRunner(dir, { expireIdleMs: 60_000 })
  await first.runner.load()
  const old = await first.runner.allocate()
  await sleep(700)
  const young = await first.runner.allocate()
  await first.close() // the node stops with both still waiting for a cmd
  const second = makeRunner(dir, { expireIdleMs: 600 })
  t.teardown(async () => { await second.runner.stopAll(); await second.close() })
  await second.runner.load()
  t.match(second.runner.get(old.id)!.record, { state: 'expired', error: /given no cmd within 0\.6 s/ }, 'the old one expired at load')
  t.match(second.store.get(old.id), { state: 'expired' })
  const reloaded = second.runner.get(young.id)!
  t.equal(reloaded.record.state, 'idle', 'the young one still waits')
  await t.rejects(reloaded.waitExit(), { code: 'ETIMEDOUT' }, 'until its time is up')
})

t.test('how many jobs may wait for a cmd at once is bounded: EAGAIN past it; the slot still runs', async (t) => {
  const { runner } = await started(t, { maxIdleJobs: 3, expireIdleMs: 1500 })
  const waiting = [await runner.allocate(), await runner.allocate('b'), await runner.allocate()]
  await t.rejects(runner.allocate(), { code: 'EAGAIN', message: /3 jobs made here are waiting for a cmd/ })
  await t.rejects(runner.allocate('d'), { code: 'EAGAIN' }, 'mkdir too')
  const slot = await runner.runInSlot('echo slot')
  t.equal(await slot.waitExit(), 0, 'the slot is not held up')
  await runner.run(waiting[0], 'true')
  const next = await runner.allocate()
  t.ok(next, 'a job that got its cmd frees a place')
  await t.rejects(runner.allocate(), { code: 'EAGAIN' })
  await Promise.all(waiting.slice(1).map((job) => job.waitExit().catch(() => {})))
  t.ok(await runner.allocate(), 'expired ones free theirs')
})

t.test('allocations at the same moment are held to the bound too', async (t) => {
  const { runner } = await started(t, { maxIdleJobs: 3 })
  const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => runner.allocate(i % 2 ? `n${i}` : undefined)))
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 3)
  t.ok(results.every((r) => r.status === 'fulfilled' || (r.reason as { code?: string }).code === 'EAGAIN'), 'the rest EAGAIN')
})

t.test('a runner forgotten (its sandbox removed) records no expiry afterwards', async (t) => {
  const { runner, store } = await started(t, { expireIdleMs: 200 })
  await runner.allocate()
  await runner.forget()
  await sleep(500)
  t.same(store.list(), [], 'nothing written back into the cleared store')
})
