// npm run bench: figures for the exec round trip, for sequential I/O and for
// metadata and cache (find, ls -lR, untar, git clone, 10,000 files in a
// folder, a re-read...) through the mount, beside the local disk and sshfs,
// printed as tables; forwarded and exposed HTTP beside a direct connection
// (./ports.mjs); then the host under fan-in (./fanin.mjs). Herds runs in
// both shapes a user runs it: `herds up` (one process), and host, node and
// mount as three processes (as when the node is another machine), each in a
// temporary home. Compare ratios within one run: these machines are shared and noisy.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { fanIn, printFanIn } from './fanin.mjs'
import { portsBench, printPorts } from './ports.mjs'
import { measure, prepare, printMetadata } from './metadata.mjs'
import { startSshBaseline } from './sshfs.mjs'

const BIN = resolve(fileURLToPath(import.meta.url), '../../../dist/cli/herds.js')
const ROUND_TRIPS = Number(process.env.BENCH_ROUND_TRIPS ?? 200)
const FILE_MIB = Number(process.env.BENCH_FILE_MIB ?? 256)
const NODE = 'bench'

const root = mkdtempSync(join(tmpdir(), 'herds-bench-'))
/** What is running, stopped at exit whatever happens. */
const running = []
process.on('exit', () => {
  for (const stop of running.reverse()) { try { stop() } catch {} }
  rmSync(root, { recursive: true, force: true })
})
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130))

/** Runs `herds <args>` in a process group of its own; resolves once it printed `ready`. */
async function herds (args, home, ready) {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, HERDS_HOME: home }, stdio: ['ignore', 'pipe', 'inherit'], detached: true })
  let out = ''
  child.stdout.on('data', (d) => { out += d })
  running.push(() => { try { process.kill(-child.pid, 'SIGKILL') } catch {} })
  const deadline = Date.now() + 30_000
  while (!ready.test(out)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`herds ${args[0]} did not start:\n${out}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return { child, out }
}

/** Stops the processes (the mount's last, gently first), and waits for the mount to be gone. */
function stopAll (children, mnt) {
  for (const child of children) { try { process.kill(-child.pid, 'SIGINT') } catch {} }
  const deadline = Date.now() + 5000
  while (Date.now() < deadline && readFileSync('/proc/mounts', 'utf8').includes(` ${mnt} `)) execFileSync('sleep', ['0.1'])
  for (const tool of ['fusermount3', 'fusermount']) { try { execFileSync(tool, ['-uz', mnt], { stdio: 'ignore' }) } catch {} }
  for (const child of children) { try { process.kill(-child.pid, 'SIGKILL') } catch {} }
}

/**
 * Starts Herds in one of its shapes, mounted at <root>/<name>/mnt: "herds up"
 * (one process), or "three processes" (herds host, herds node, herds mount).
 * Returns the mount and the node's volumes folder on its disk.
 */
async function startHerds (name) {
  const dir = join(root, name.replace(/\W+/g, '-'))
  const home = join(dir, 'home')
  const mnt = join(dir, 'mnt')
  mkdirSync(mnt, { recursive: true })
  const children = []
  if (name === 'herds up') {
    children.push((await herds(['up', '--port', '0', '--name', NODE, '--mount', mnt], home, /Ctrl-C to stop/)).child)
  } else {
    const host = await herds(['host', '--port', '0'], home, /ws:\/\/\S+/)
    children.push(host.child)
    const url = host.out.match(/ws:\/\/\S+/)[0]
    children.push((await herds(['node', '--host', url, '--name', NODE], home, /connected|node\s/)).child)
    children.push((await herds(['mount', url, mnt], home, /mount\s|mounted|Ctrl-C/)).child)
    const deadline = Date.now() + 30_000
    while (!existsSync(join(mnt, 'nodes', NODE, 'exec'))) {
      if (Date.now() > deadline) throw new Error('the three processes did not show the node in time')
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  const stop = () => stopAll(children.reverse(), mnt)
  running.push(stop)
  return { name, home, mnt, volumes: join(home, 'nodes', NODE, 'volumes'), stop }
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))]

/** Runs dd and returns MB/s (decimal, as dd reports). */
function dd (args) {
  const started = process.hrtime.bigint()
  execFileSync('dd', [...args, 'bs=1M', 'status=none'])
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  return (FILE_MIB * 1024 * 1024 / 1e6 / seconds)
}

/** Exec round trips: write cmd (the job starts on close), read exit (blocks until the end); sorted ms. */
async function execTimes (mnt) {
  const exec = join(mnt, 'nodes', NODE, 'exec')
  const times = []
  for (let i = 0; i < ROUND_TRIPS; i++) {
    const started = process.hrtime.bigint()
    await writeFile(join(exec, 'cmd'), 'true\n')
    const code = await readFile(join(exec, 'exit'), 'utf8')
    times.push(Number(process.hrtime.bigint() - started) / 1e6)
    if (code !== '0\n') throw new Error(`job ${i} exited ${code}`)
  }
  return times.sort((a, b) => a - b)
}

/** Writes then reads FILE_MIB MiB at `file`, the page cache dropped between; [write, read] MB/s. */
function sequential (file) {
  const write = dd(['if=/dev/zero', `of=${file}`, `count=${FILE_MIB}`, 'conv=fsync'])
  execFileSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true'])
  const read = dd([`if=${file}`, 'of=/dev/null'])
  rmSync(file, { force: true })
  return [write, read]
}

const execRows = []
const seqRows = []
const places = []
let portRows = []
for (const shape of ['herds up', 'three processes']) {
  const herd = await startHerds(shape)
  execRows.push([shape, await execTimes(herd.mnt)])
  const volume = join(herd.mnt, 'nodes', NODE, 'volumes', 'bench')
  await mkdir(volume)
  seqRows.push([shape, ...sequential(join(volume, 'file.bin'))])
  const meta = join(herd.mnt, 'nodes', NODE, 'volumes', 'meta')
  await mkdir(meta)
  prepare(join(herd.volumes, 'meta'), meta, root)
  places.push([shape, measure(meta), true])
  if (shape === 'herds up') portRows = await portsBench({ bin: BIN, home: herd.home, mnt: herd.mnt, node: NODE, running })
  herd.stop()
}

// The yardsticks: the local disk, and ssh to run a command with sshfs for files, on this machine.
const local = join(root, 'local-meta')
mkdirSync(local)
seqRows.push(['local disk', ...sequential(join(root, 'local.bin'))])
prepare(local, local, root)
places.push(['disk', measure(local), false])
const ssh = await startSshBaseline(root)
if (ssh.missing) console.error(`bench: sshfs baseline missing: ${ssh.missing}; the sshfs columns are left out`)
let sshTimes = []
if (!ssh.missing) {
  running.push(() => ssh.stop())
  for (let i = 0; i < Math.min(ROUND_TRIPS, 50); i++) {
    const started = process.hrtime.bigint()
    ssh.run('true')
    sshTimes.push(Number(process.hrtime.bigint() - started) / 1e6)
  }
  sshTimes = sshTimes.sort((a, b) => a - b)
  seqRows.push(['sshfs', ...sequential(join(ssh.mnt, 'file.bin'))])
  mkdirSync(join(ssh.remote, 'meta'))
  prepare(join(ssh.remote, 'meta'), join(ssh.mnt, 'meta'), root)
  places.push(['sshfs', measure(join(ssh.mnt, 'meta')), false])
}
const fan = await fanIn()

const pad = (s, n) => String(s).padEnd(n)
console.log('\nHerds benchmark')
console.log(`exec round trip (write cmd "true", read exit), ${ROUND_TRIPS} runs`)
console.log(`  ${pad('', 20)}${pad('p50 ms', 10)}${pad('p99 ms', 10)}max ms`)
for (const [shape, times] of execRows) console.log(`  ${pad(shape, 20)}${pad(percentile(times, 50).toFixed(1), 10)}${pad(percentile(times, 99).toFixed(1), 10)}${times.at(-1).toFixed(1)}`)
if (ssh.missing) console.log(`  (no ssh baseline: ${ssh.missing})`)
else console.log(`  ${pad(`ssh 127.0.0.1 true`, 20)}${pad(percentile(sshTimes, 50).toFixed(1), 10)}${pad(percentile(sshTimes, 99).toFixed(1), 10)}${sshTimes.at(-1).toFixed(1)}   (${sshTimes.length} runs, a new connection each)`)
console.log(`\nsequential ${FILE_MIB} MiB, dd bs=1M (write with conv=fsync; read after the page cache is dropped)`)
console.log(`  ${pad('', 26)}${pad('write MB/s', 13)}read MB/s`)
for (const [where, write, read] of seqRows) console.log(`  ${pad(where, 26)}${pad(write.toFixed(0), 13)}${read.toFixed(0)}`)
const row = (name) => seqRows.find(([where]) => where === name)
for (const shape of ['herds up', 'three processes']) {
  for (const other of ['local disk', 'sshfs']) {
    if (!row(other)) continue
    console.log(`  ${pad(`${shape} / ${other === 'local disk' ? 'disk' : other}`, 26)}${pad((row(shape)[1] / row(other)[1]).toFixed(2), 13)}${(row(shape)[2] / row(other)[2]).toFixed(2)}`)
  }
}
printMetadata(places, ssh.missing)
printPorts(portRows)
printFanIn(fan)
process.exit(0) // stops Herds and sshd, unmounts, removes the temporary homes
