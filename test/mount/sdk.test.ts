// One SDK suite, run unchanged against both transports (issue 6): Herds.connect over WebSocket and
// Herds.open on a real FUSE mount, both against a real host and node started by `herds up`.
import t from 'tap'
import { Herds, HerdsError, type OutputChunk } from '../../mount/sdk/index.js'
import { herdsUp } from '../e2e/harness.js'

const up = await herdsUp(t, 'sdknode')
const transports: Array<[string, () => Promise<Herds>]> = [
  ['connect', () => Herds.connect({ url: up.url, token: up.adminToken })],
  ['open', () => Herds.open(up.mountpoint)],
]

for (const [kind, make] of transports) {
  t.test(`the SDK through Herds.${kind}`, async (t) => {
    const herds = await make()
    t.teardown(() => herds.close())
    const node = herds.node(up.name)

    t.test('nodes, pick, health', async (t) => {
      t.match(await herds.nodes(), [{ name: up.name, online: true }])
      t.equal((await herds.pick()).name, up.name)
      t.match(await herds.health(), { nodes: { online: 1 }, defaultNode: up.name })
    })

    t.test('run: exit code, stdout and stderr apart, duration', async (t) => {
      const result = await node.run('echo out; echo err >&2; exit 3')
      t.match(result, { exitCode: 3, exitStatus: 3, signal: null, stdout: 'out\n', stderr: 'err\n', timedOut: false, state: 'exited' })
      t.type(result.durationMs, 'number')
    })

    t.test('run with env, timeout and stdin', async (t) => {
      const timed = await node.run('echo "x=$SDK_X"; sleep 30', { env: { SDK_X: kind }, timeout: 1 })
      t.match(timed, { timedOut: true, state: 'timed_out', stdout: `x=${kind}\n` })
      t.equal((await node.run('wc -c', { stdin: 'abcdef' })).stdout.trim(), '6')
      t.equal((await node.run('cat')).stdout, '', 'without stdin, the job reads end of file at once')
      t.equal((await node.run('sleep 1; wc -c', { stdin: Buffer.alloc(3_000_000, 120) })).stdout.trim(), '3000000', 'a stdin larger than the node holds unread')
      t.equal((await node.run('echo ok', { timeout: 0 })).timedOut, false, 'timeout 0: no limit')
      const smuggled = await node.run('true', { env: { A: 'x\nB=2' } }).catch((err) => err)
      t.equal(smuggled.code, 'EINVAL', 'a newline in an env value is refused')
    })

    t.test('stream: output as it comes', async (t) => {
      const chunks: OutputChunk[] = []
      const started = Date.now()
      let firstAt = 0
      for await (const chunk of node.stream('for i in 1 2 3; do echo $i; sleep 0.3; done; echo done >&2')) {
        firstAt ||= Date.now() - started
        chunks.push(chunk)
      }
      const text = (stream: string): string => Buffer.concat(chunks.filter((c) => c.stream === stream).map((c) => c.data)).toString()
      t.equal(text('stdout'), '1\n2\n3\n')
      t.equal(text('stderr'), 'done\n')
      t.ok(firstAt < 800, `the first line came before the job ended (${firstAt} ms)`)
    })

    t.test('spawn: write, end, kill, wait', async (t) => {
      const cat = await node.spawn('cat')
      t.match(cat.id, /^\d+$/)
      await cat.write('ab')
      await cat.write('cd')
      await cat.end()
      t.match(await cat.wait(), { exitCode: 0, stdout: 'abcd' })
      const sleeper = await node.spawn('sleep 30')
      await sleeper.kill()
      t.match(await sleeper.wait(), { state: 'killed', signal: 'SIGTERM', exitCode: null, exitStatus: 143 })
    })

    t.test('a terminal: shell(), openStdin, follow from an offset, resize', async (t) => {
      const job = await node.shell({ cmd: 'PS1="sdk> " sh -i', tty: { rows: 20, cols: 70 } })
      t.teardown(() => job.kill('KILL').catch(() => {}))
      /** Follows stdout from `from` until `pattern` shows, then stops reading. */
      const until = async (pattern: RegExp, from = 0): Promise<string> => {
        let text = ''
        const stop = new AbortController()
        const timer = setTimeout(() => stop.abort(), 15_000) // fail here, not at the suite's timeout
        await job.follow('stdout', (chunk) => {
          text += chunk.toString()
          if (pattern.test(text)) stop.abort()
        }, { from, signal: stop.signal }).catch((err) => { if (!stop.signal.aborted) throw err })
        clearTimeout(timer)
        if (!pattern.test(text)) throw new Error(`no ${String(pattern)} in 15 s; the terminal said ${JSON.stringify(text.slice(-200))}`)
        return text
      }
      await until(/sdk> $/)
      const keys = await job.openStdin()
      for (const key of 'stty size\n') await keys.write(Buffer.from(key)) // one write a keystroke, as a person types
      t.match(await until(/\r\n20 70\r\n/), /stty size\r\n20 70\r\n/, 'echoed as typed, and the size given')
      await job.resize(33, 101)
      const state = await job.state()
      t.match(state, { state: 'running', tty: { rows: 33, cols: 101, term: 'xterm-256color' } })
      const seen = (state.bytes as { stdout: number }).stdout
      t.ok(seen > 0, `status counts the bytes so far (${seen})`)
      await keys.write(Buffer.from('stty size\n'))
      const after = await until(/33 101\r\n/, seen)
      t.notMatch(after, /20 70/, 'followed from where status said, not from the start')
      await keys.write(Buffer.from('exit 6\n'))
      await keys.close()
      t.match(await job.status(), { exitStatus: 6, state: 'exited' })
    })

    t.test('a sandbox: files in its workspace, jobs in it, config, removal', async (t) => {
      const box = await node.sandbox(`sdk-${kind}`, { network: false })
      t.equal((await box.config()).network, false)
      await box.writeFile('hello.txt', 'hi from the SDK\n')
      await box.mkdir('sub')
      await box.writeFile('sub/deep.txt', 'deep')
      t.same((await box.readdir()).sort(), ['hello.txt', 'sub'])
      const result = await box.run('cat hello.txt; pwd')
      t.match(result.stdout, /^hi from the SDK\n.*sandboxes\/sdk-\w+\/workspace\n$/)
      t.equal((await box.readFile('../../../../etc/hostname').catch((err) => err)).code, 'ENOENT', '.. does not climb out of the workspace')
      await box.rm('sub', { recursive: true })
      t.same(await box.readdir(), ['hello.txt'])
      const refused = await box.configure({ network: 'no' }).catch((err) => err)
      t.ok(refused instanceof HerdsError, 'a typed error')
      t.equal(refused.code, 'EINVAL')
      await box.remove()
      t.notOk((await node.sandbox(`sdk-${kind}`).then((b) => b.readdir())).includes('hello.txt'), 'removed, and made anew empty')
      await (await node.sandbox(`sdk-${kind}`)).remove()
    })

    t.test('a volume: the file methods', async (t) => {
      const volume = await node.volume(`vol-${kind}`)
      await volume.writeFile('a.txt', 'A')
      t.equal((await volume.readFile('a.txt')).toString(), 'A')
      t.equal((await volume.stat('a.txt')).size, 1)
      t.equal((await volume.remove().catch((err) => err)).code, 'ENOTEMPTY')
      await volume.rm('a.txt')
      await volume.remove()
    })

    t.test('names are checked before anything is touched', async (t) => {
      t.equal((await node.sandbox('../volumes/sneaky').catch((err) => err)).code, 'EINVAL')
      t.equal((await node.volume('a/b').catch((err) => err)).code, 'EINVAL')
      t.throws(() => herds.node('..'), { code: 'EINVAL' })
      t.notOk((await node.volume('probe').then(async (v) => { await v.remove(); return false })), 'nothing stray was made')
    })

    t.test('errors carry the errno and the host\'s reason', async (t) => {
      const empty = await node.run('').catch((err) => err)
      t.ok(empty instanceof HerdsError)
      t.equal(empty.code, 'EINVAL')
      t.match(empty.message, /empty command/, 'the reason exec/error gave')
      const missing = await herds.node('nowhere').run('true').catch((err) => err)
      t.equal(missing.code, 'ENOENT')
    })
  })
}

t.test('Herds.open on a folder that is no mount says so', async (t) => {
  await t.rejects(Herds.open('/tmp'), { code: 'ENOENT', message: /not a Herds mount/ })
})

t.test('closing a connection fails a read that waits, at once', async (t) => {
  const herds = await Herds.connect({ url: up.url, token: up.adminToken })
  const job = await herds.node(up.name).spawn('sleep 30')
  const waiting = job.wait().then(() => 'ended', (err) => err.code)
  await new Promise((resolve) => setTimeout(resolve, 200))
  const started = Date.now()
  herds.close()
  t.equal(await waiting, 'ECANCELED')
  t.ok(Date.now() - started < 2000, `failed within ${Date.now() - started} ms`)
  const admin = await Herds.open(up.mountpoint)
  await admin.files.write(`/nodes/${up.name}/exec/jobs/${job.id}/ctl`, 'kill KILL\n')
})
