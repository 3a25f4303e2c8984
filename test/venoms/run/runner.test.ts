// A runner on a real lmdb store and real processes, with small limits so the edges show.
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { lmdbJobStore, openNodeDb } from '../../../nodes/store.js'
import { Runner } from '../../../venoms/run/runner.js'
import { tempDir } from '../../e2e/harness.js'

async function makeRunner (t: Test, limits: ConstructorParameters<typeof Runner>[0]['limits']): Promise<{ runner: Runner, outputDir: string }> {
  const dir = tempDir(t)
  const db = openNodeDb(join(dir, 'db'))
  t.teardown(() => db.close())
  const outputDir = join(dir, 'jobs')
  const r = new Runner({ cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, shell: '/bin/sh', outputDir, store: lmdbJobStore(db), limits })
  await r.load()
  t.teardown(() => r.stopAll())
  return { runner: r, outputDir }
}

const text = async (job: { read: (s: 'stdout', o: number, l: number) => Promise<Uint8Array> }): Promise<string> => {
  let out = ''
  for (let offset = 0; ;) {
    const chunk = await job.read('stdout', offset, 65536)
    if (chunk.length === 0) return out
    out += Buffer.from(chunk).toString()
    offset += chunk.length
  }
}

t.test('output past the cap is dropped, and the output says so', async (t) => {
  const { runner } = await makeRunner(t, { maxOutputBytes: 1000 })
  const job = await runner.runInSlot('head -c 5000 /dev/zero | tr "\\0" x; echo done >&2')
  await job.waitEnd()
  const out = await text(job)
  t.equal(out.indexOf('[herds: output truncated'), 1001, 'a line after the first 1000 bytes says so')
  t.match(out, /more than 1000 bytes\]\n$/)
  t.equal(job.record.truncated, true)
  t.equal(job.record.state, 'exited', 'the job ran to its end')
})

t.test('ended jobs past the count limit are removed, output and all', async (t) => {
  const { runner, outputDir } = await makeRunner(t, { keepJobs: 3 })
  for (let i = 0; i < 6; i++) {
    const job = await runner.runInSlot(`echo ${i}`)
    await job.waitEnd()
  }
  await runner.prune()
  t.same(runner.ids().sort(), ['3', '4', '5', '6'], 'the three newest ended jobs, and the current one, remain')
  t.same(readdirSync(outputDir).sort(), ['3', '4', '5', '6'])
})

t.test('settings and jobs outlive the runner; a job that was running comes back lost', async (t) => {
  const dir = tempDir(t)
  const make = (): { runner: Runner, close: () => Promise<void> } => {
    const db = openNodeDb(join(dir, 'db'))
    const r = new Runner({ cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, shell: '/bin/sh', outputDir: join(dir, 'jobs'), store: lmdbJobStore(db) })
    return { runner: r, close: () => db.close() }
  }
  const first = make()
  await first.runner.load()
  await first.runner.saveSettings({ env: { A: '1' }, timeout: 9 })
  const job = await first.runner.runInSlot('echo before; sleep 30')
  t.equal(Buffer.from(await job.read('stdout', 0, 100)).toString(), 'before\n')
  // The node "crashes": its database closes with the job still recorded as running.
  await first.close()
  const second = make()
  t.teardown(async () => { job.kill('SIGKILL'); await job.waitEnd(); await second.close() })
  await second.runner.load()
  t.same(second.runner.settings, { env: { A: '1' }, timeout: 9 })
  const lost = second.runner.get(job.id)!
  t.match(lost.record, { state: 'lost', error: /restarted/ })
  t.equal(Buffer.from(await lost.read('stdout', 0, 100)).toString(), 'before\n', 'the output up to the crash is kept')
  await t.rejects(lost.read('stdout', 7, 100), { code: 'EIO', message: /cut short/ }, 'and its end is no EOF')
  await t.rejects(lost.read('output', 7, 100), { code: 'EIO' })
})

t.test('a shell that is not there: failed_to_start, the writer told ENOENT, the slot free', async (t) => {
  const dir = tempDir(t)
  const db = openNodeDb(join(dir, 'db'))
  t.teardown(() => db.close())
  const runner = new Runner({ cwd: dir, env: { PATH: '/usr/bin:/bin' }, shell: '/nonexistent/sh', outputDir: join(dir, 'jobs'), store: lmdbJobStore(db) })
  await runner.load()
  await t.rejects(runner.runInSlot('echo hi'), { code: 'ENOENT', message: /failed to start: cannot run \/nonexistent\/sh/ })
  const job = runner.current!
  t.match(job.record, { state: 'failed_to_start', pid: null, exitCode: 127, error: /cannot run/ })
  t.equal(job.exitStatus(), 127)
  await job.waitEnd()
  t.equal((await job.read('stdout', 0, 100)).length, 0, 'its output is empty, and ends')
  t.doesNotThrow(() => runner.checkSlotFree(), 'the slot takes the next command')
})

t.test('an environment spawn refuses (a NUL byte in a value): failed_to_start, and the value is not quoted', async (t) => {
  const dir = tempDir(t)
  const db = openNodeDb(join(dir, 'db'))
  t.teardown(() => db.close())
  const runner = new Runner({ cwd: dir, env: { PATH: '/usr/bin:/bin', TOKEN: 'hunter2\0prod' }, shell: '/bin/sh', outputDir: join(dir, 'jobs'), store: lmdbJobStore(db) })
  await runner.load()
  await t.rejects(runner.runInSlot('echo hi'), { code: 'EINVAL', message: /NUL byte/ })
  t.match(runner.current!.record, { state: 'failed_to_start', error: /NUL byte/ })
  t.notMatch(runner.current!.record.error, /hunter2/)
  t.doesNotThrow(() => runner.checkSlotFree())
})
