// Processes coming and going, as a user sees it through the mount.
import { spawn, spawnSync } from 'node:child_process'
import { createServer } from 'node:net'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { errnoOf } from './files.js'
import { HERDS_BIN, herdsUp, isMounted, spawnHerds, tempDir, unmountAtTeardown } from './harness.js'

/** A port free right now, for a host that must come back on the same one. */
async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Processes in a process group, other than zombies. */
function groupMembers (pgid: number): string[] {
  const ps = spawnSync('ps', ['-eo', 'pgid=,stat=,args='], { encoding: 'utf8' }).stdout
  return ps.split('\n').map((l) => l.trim()).filter((l) => l.startsWith(`${pgid} `) && !/^\d+ Z/.test(l))
}

t.test('a job printing a line a second for 17 s streams through cat, past fuse-native\'s 15 s', async (t) => {
  const up = await herdsUp(t)
  const exec = join(up.nodeDir, 'exec')
  await writeFile(join(exec, 'cmd'), 'for i in $(seq 1 17); do echo tick $i; sleep 1; done\n')
  const started = Date.now()
  const result = spawnSync('cat', [join(exec, 'stdout')], { encoding: 'utf8', timeout: 60_000 })
  const took = Date.now() - started
  t.equal(result.status, 0, `cat ended cleanly: ${result.stderr}`)
  t.equal(result.stdout.split('\n').filter(Boolean).length, 17)
  t.match(result.stdout, /tick 17\n$/)
  t.ok(took > 15_000, `cat ran ${took} ms without being cut off`)
})

t.test('Ctrl-C on herds up unmounts and leaves no process behind', async (t) => {
  const up = await herdsUp(t)
  const exec = join(up.nodeDir, 'exec')
  await writeFile(join(exec, 'cmd'), 'sleep 300\n')
  const status = JSON.parse(await readFile(join(exec, 'status'), 'utf8'))
  t.equal(status.state, 'running')
  up.proc.signal('SIGINT')
  t.equal(await up.proc.exited, 0, 'exits 0')
  t.notOk(isMounted(up.mountpoint), 'no mount left')
  t.same(groupMembers(up.proc.child.pid!), [], 'nothing left in its process group')
  t.throws(() => process.kill(status.pid, 0), 'the running job was ended')
})

t.test('Ctrl-C on herds up ends cleanly with a reader waiting and another mount namespace (a sandbox job\'s) holding the mount', async (t) => {
  const up = await herdsUp(t)
  const exec = join(up.nodeDir, 'exec')
  await writeFile(join(exec, 'cmd'), 'sleep 300\n')
  // A reader waiting on the job's output when the mount goes: its request is still in service.
  const reader = spawn('cat', [join(exec, 'stdout')], { stdio: 'ignore' })
  t.teardown(() => { reader.kill('SIGKILL') })
  // A process in a mount namespace of its own keeps a copy of the mount, as a fenced job does.
  const holder = spawn('unshare', ['-m', '--propagation', 'private', 'sleep', '60'], { stdio: 'ignore' })
  t.teardown(() => { holder.kill('SIGKILL') })
  await new Promise((resolve) => setTimeout(resolve, 500))
  up.proc.signal('SIGINT')
  const code = await Promise.race([up.proc.exited, new Promise((resolve) => setTimeout(() => resolve('still running after 4 s'), 4_000))])
  t.equal(code, 0, `exits 0 (${up.proc.output().split('\n').slice(-4).join(' | ')})`)
  t.notOk(isMounted(up.mountpoint), 'no mount left here')
  t.notMatch(up.proc.output(), /failed to unmount|Error:|\n\s+at /, 'no error or stack trace printed')
})

t.test('the mount can stop and come back while a job runs; the output is complete', async (t) => {
  const root = tempDir(t)
  const home = join(root, 'home')
  const mnt = join(root, 'mnt')
  unmountAtTeardown(t, mnt)
  const host = spawnHerds(t, ['host', '--port', '0'], home)
  const url = (await host.waitFor(/host\s+(ws:\/\/\S+)/))[1]
  const node = spawnHerds(t, ['node', '--host', url, '--name', 'studio'], home)
  await node.waitFor(/node\s+studio/)
  const mount1 = spawnHerds(t, ['mount', url, mnt], home)
  await mount1.waitFor(/mount\s+/)
  const exec = join(mnt, 'nodes', 'studio', 'exec')
  await writeFile(join(exec, 'cmd'), 'for i in $(seq 1 30); do echo step $i; sleep 0.1; done\n')
  t.equal(await mount1.stop(), 0, 'the mount stopped cleanly')
  t.notOk(isMounted(mnt), 'and unmounted')
  const mount2 = spawnHerds(t, ['mount', url, mnt], home)
  await mount2.waitFor(/mount\s+/)
  t.equal(await readFile(join(exec, 'exit'), 'utf8'), '0\n')
  const expected = Array.from({ length: 30 }, (_, i) => `step ${i + 1}\n`).join('')
  t.equal(await readFile(join(exec, 'stdout'), 'utf8'), expected)
})

t.test('kill -9 the host mid-job and start it again: cat goes on, the output is whole, jobs.json knows the end', async (t) => {
  const root = tempDir(t)
  const mnt = join(root, 'mnt')
  unmountAtTeardown(t, mnt)
  const port = await freePort()
  const host1 = spawnHerds(t, ['host', '--port', String(port)], root)
  const url = (await host1.waitFor(/host\s+(ws:\/\/\S+)/))[1]
  const node = spawnHerds(t, ['node', '--host', url, '--name', 'studio'], root)
  await node.waitFor(/node\s+studio/)
  const mount = spawnHerds(t, ['mount', url, mnt], root)
  await mount.waitFor(/mount\s+/)
  const exec = join(mnt, 'nodes', 'studio', 'exec')
  await writeFile(join(exec, 'cmd'), 'for i in $(seq 1 40); do echo step $i; sleep 0.1; done\n')
  const cat = spawn('cat', [join(exec, 'stdout')], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => cat.kill('SIGKILL'))
  let seen = ''
  cat.stdout.on('data', (chunk) => { seen += chunk })
  const catExit = new Promise<number | null>((resolve) => cat.on('exit', resolve))
  await new Promise((resolve) => setTimeout(resolve, 800))
  host1.signal('SIGKILL')
  await host1.exited
  await mount.waitFor(/mount\s+lost the host at ws:\S+; reconnecting/)
  const host2 = spawnHerds(t, ['host', '--port', String(port)], root)
  await host2.waitFor(/node studio connected/, 20_000)
  await mount.waitFor(/mount\s+connected to the host again/, 20_000)
  t.pass('the mount said, one line each, that the host went away and came back')
  t.equal(await catExit, 0, 'cat ended cleanly')
  const expected = Array.from({ length: 40 }, (_, i) => `step ${i + 1}\n`).join('')
  t.equal(seen, expected, 'cat saw every line, once, across the restart')
  t.equal(await readFile(join(exec, 'exit'), 'utf8'), '0\n')
  t.equal(await readFile(join(exec, 'stdout'), 'utf8'), expected)
  const jobs = JSON.parse(await readFile(join(mnt, '.herds', 'catalog', 'jobs.json'), 'utf8'))
  t.match(jobs[0], { node: 'studio', state: 'exited', exitCode: 0, cmd: /seq 1 40/ })
})

t.test('a node killed with -9 and started again marks the job that was running as lost', async (t) => {
  const up = await herdsUp(t)
  const root = tempDir(t)
  const mnt = join(root, 'mnt')
  unmountAtTeardown(t, mnt)
  // A second node with a home of its own, so it can be killed alone.
  const home = join(root, 'node')
  const node1 = spawnHerds(t, ['node', '--host', up.url, '--name', 'laptop'], home, { HERDS_TOKEN: up.adminToken })
  await node1.waitFor(/node\s+laptop/)
  const exec = join(up.mountpoint, 'nodes', 'laptop', 'exec')
  t.teardown(() => { spawnSync('pkill', ['-f', 'sleep 77.7']) })
  await writeFile(join(exec, 'cmd'), 'sleep 77.7\n')
  t.equal(JSON.parse(await readFile(join(exec, 'status'), 'utf8')).state, 'running')
  node1.signal('SIGKILL')
  await node1.exited
  const node2 = spawnHerds(t, ['node', '--host', up.url, '--name', 'laptop'], home, { HERDS_TOKEN: up.adminToken })
  await node2.waitFor(/node\s+laptop/, 30_000)
  const status = JSON.parse(await readFile(join(exec, 'status'), 'utf8'))
  t.match(status, { state: 'lost', error: /restarted/ })
  t.equal(await readFile(join(exec, 'exit'), 'utf8'), '255\n', 'exit does not wait forever')
})

t.test('a second node with a connected name is refused with a clear message', async (t) => {
  const up = await herdsUp(t)
  const second = spawnHerds(t, ['node', '--host', up.url, '--name', up.name], tempDir(t), { HERDS_TOKEN: up.adminToken })
  t.equal(await second.exited, 1)
  t.match(second.output(), /herds: a node named "studio" is already connected/)
  t.notMatch(second.output(), /\n\s+at /, 'no stack trace')
})

t.test('an offline node shows its status and fails fast with EHOSTDOWN', async (t) => {
  const root = tempDir(t)
  const mnt = join(root, 'mnt')
  unmountAtTeardown(t, mnt)
  const host = spawnHerds(t, ['host', '--port', '0'], root)
  const url = (await host.waitFor(/host\s+(ws:\/\/\S+)/))[1]
  const node = spawnHerds(t, ['node', '--host', url, '--name', 'laptop'], root)
  await node.waitFor(/node\s+laptop/)
  const mount = spawnHerds(t, ['mount', url, mnt], root)
  await mount.waitFor(/mount\s+/)
  const dir = join(mnt, 'nodes', 'laptop')
  t.equal(JSON.parse(await readFile(join(dir, 'status.json'), 'utf8')).online, true)
  await node.stop()
  const status = JSON.parse(await readFile(join(dir, 'status.json'), 'utf8'))
  t.equal(status.online, false)
  const started = Date.now()
  t.equal(await errnoOf(readFile(join(dir, 'exec', 'status'))), 'EHOSTDOWN')
  t.ok(Date.now() - started < 2000, 'at once, not after a timeout')
})

t.test('bad flags are one clear line, not a stack trace', async (t) => {
  for (const args of [['up', '--port', 'seventy'], ['node', '--host', 'http://x', '--name', 'a'], ['up', '--name', '../etc']]) {
    const result = spawnSync(process.execPath, [HERDS_BIN, ...args], { encoding: 'utf8' })
    t.equal(result.status, 1, args.join(' '))
    t.match(result.stderr, /^herds: (--port|--host|--name): /, result.stderr)
    t.notMatch(result.stderr, /\n\s+at /)
  }
  const mountErr = spawnSync(process.execPath, [HERDS_BIN, 'mount', '--token', 'herds_' + 'x'.repeat(43), 'ws://127.0.0.1:1', '/tmp/herds-never'], { encoding: 'utf8' })
  t.equal(mountErr.status, 1)
  t.match(mountErr.stderr, /^herds: cannot reach the host at ws:\/\/127\.0\.0\.1:1/)
  const noToken = spawnSync(process.execPath, [HERDS_BIN, 'mount', 'ws://127.0.0.1:1', '/tmp/herds-never'], { encoding: 'utf8', env: { ...process.env, HERDS_HOME: tempDir(t), HERDS_TOKEN: '' } })
  t.equal(noToken.status, 1)
  t.match(noToken.stderr, /^herds: no token: give --token or set HERDS_TOKEN/)
})
