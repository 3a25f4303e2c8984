// A waiting read ends when its reader is interrupted (issue 12, DESIGN §4 and §9): timeout, Ctrl-C.
// The libfuse3 layer passes FUSE_INTERRUPT on; fuse-native (the fallback) cannot cancel a read that already waits.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { herdsUp, type Teardown } from './harness.js'

const up = await herdsUp(t)
const exec = join(up.nodeDir, 'exec')
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

interface Waiting { child: ChildProcess, ended: Promise<number | string> }
/** Starts a reader; `ended` resolves with its exit code or signal. */
const startReader = (cmd: string, args: string[]): Waiting => {
  const child = spawn(cmd, args, { stdio: 'ignore' })
  const ended = new Promise<number | string>((resolve) => child.on('exit', (code, sig) => resolve(code ?? sig ?? -1)))
  return { child, ended }
}
/** How long `w` took to end from now, or undefined if it had not within `ms`. */
const endsWithin = async (w: Waiting, ms: number): Promise<{ took?: number, code?: number | string }> => {
  const started = Date.now()
  const code = await Promise.race([w.ended, sleep(ms).then(() => undefined)])
  return code === undefined ? {} : { took: Date.now() - started, code }
}
/**
 * At teardown: `release` ends what the reader waits for (a read the mount
 * cannot cancel holds even kill -9), then the reader is killed and awaited.
 */
const releaseAtTeardown = (t: Teardown, w: Waiting, release: () => Promise<unknown>): void => {
  t.teardown(async () => {
    await release().catch(() => {})
    w.child.kill('SIGKILL')
    await Promise.race([w.ended, sleep(10_000)])
  })
}

t.test('timeout 3 cat exit of an idle job returns within 4 s', async (t) => {
  const id = (await readFile(join(exec, 'new'), 'utf8')).trim()
  const job = join(exec, 'jobs', id)
  const reader = startReader('timeout', ['3', 'cat', join(job, 'exit')])
  releaseAtTeardown(t, reader, () => writeFile(join(job, 'cmd'), 'true\n'))
  const { took, code } = await endsWithin(reader, 4_000)
  t.ok(took !== undefined, `timeout ended the cat (${took === undefined ? 'still waiting after 4 s' : `after ${took} ms`})`)
  if (took !== undefined) t.equal(code, 124, 'timeout says it had to stop it')
  t.match(JSON.parse(await readFile(join(job, 'status'), 'utf8')), { state: 'idle' }, 'the job is still idle')
})

t.test('Ctrl-C (SIGINT) ends a cat stdout of a running job within 1 s, and the job keeps running', async (t) => {
  const id = (await readFile(join(exec, 'new'), 'utf8')).trim()
  const job = join(exec, 'jobs', id)
  await writeFile(join(job, 'cmd'), 'sleep 60\n')
  const reader = startReader('cat', [join(job, 'stdout')])
  releaseAtTeardown(t, reader, () => writeFile(join(job, 'ctl'), 'kill KILL\n'))
  await sleep(500)
  t.equal(reader.child.exitCode, null, 'the cat waits for output')
  reader.child.kill('SIGINT')
  const { took, code } = await endsWithin(reader, 1_000)
  t.ok(took !== undefined, `SIGINT ended the cat (${took === undefined ? 'still waiting after 1 s' : `after ${took} ms`})`)
  if (took !== undefined) t.equal(code, 'SIGINT', 'it died of the SIGINT')
  t.match(JSON.parse(await readFile(join(job, 'status'), 'utf8')), { state: 'running' }, 'the job is still running')
})
