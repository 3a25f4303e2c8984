// npm run bench: figures for the exec round trip, for sequential I/O and for
// metadata and cache (find, ls -lR, git status, a re-read) through the mount,
// beside the local disk and sshfs, printed as tables. Runs a real `herds up` in a temporary home.
// Compare ratios within one run: these machines are shared and noisy.
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { measure, prepare, printMetadata } from './metadata.mjs'
import { startSshBaseline } from './sshfs.mjs'

const BIN = resolve(fileURLToPath(import.meta.url), '../../../dist/cli/herds.js')
const ROUND_TRIPS = Number(process.env.BENCH_ROUND_TRIPS ?? 200)
const FILE_MIB = Number(process.env.BENCH_FILE_MIB ?? 256)

const root = mkdtempSync(join(tmpdir(), 'herds-bench-'))
const mnt = join(root, 'mnt')
const up = spawn(process.execPath, [BIN, 'up', '--port', '0', '--name', 'bench', '--mount', mnt], {
  env: { ...process.env, HERDS_HOME: join(root, 'home') }, stdio: ['ignore', 'pipe', 'inherit'], detached: true,
})
let upOut = ''
up.stdout.on('data', (d) => { upOut += d })

let ssh
function cleanup () {
  ssh?.stop?.()
  try { process.kill(-up.pid, 'SIGINT') } catch {}
  const deadline = Date.now() + 5000
  while (Date.now() < deadline && readFileSync('/proc/mounts', 'utf8').includes(` ${mnt} `)) execFileSync('sleep', ['0.1'])
  try { execFileSync('fusermount', ['-uz', mnt], { stdio: 'ignore' }) } catch {}
  try { process.kill(-up.pid, 'SIGKILL') } catch {}
  rmSync(root, { recursive: true, force: true })
}
process.on('exit', cleanup)
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130))

async function waitReady () {
  const deadline = Date.now() + 30_000
  while (!/Ctrl-C to stop/.test(upOut)) {
    if (Date.now() > deadline || up.exitCode !== null) throw new Error(`herds up did not start:\n${upOut}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))]

/** Runs dd and returns MB/s (decimal, as dd reports). */
function dd (args) {
  const started = process.hrtime.bigint()
  execFileSync('dd', [...args, 'bs=1M', 'status=none'])
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  return (FILE_MIB * 1024 * 1024 / 1e6 / seconds)
}

await waitReady()
const exec = join(mnt, 'nodes', 'bench', 'exec')

// Exec round trip: write cmd (the job starts on close), read exit (blocks until the end).
const times = []
for (let i = 0; i < ROUND_TRIPS; i++) {
  const started = process.hrtime.bigint()
  await writeFile(join(exec, 'cmd'), 'true\n')
  const code = await readFile(join(exec, 'exit'), 'utf8')
  times.push(Number(process.hrtime.bigint() - started) / 1e6)
  if (code !== '0\n') throw new Error(`job ${i} exited ${code}`)
}
times.sort((a, b) => a - b)

// The baseline: ssh to run a command, sshfs for files, on this machine.
ssh = await startSshBaseline(root)
if (ssh.missing) console.error(`bench: sshfs baseline missing: ${ssh.missing}; the sshfs columns are left out`)
const sshTimes = []
if (!ssh.missing) {
  for (let i = 0; i < Math.min(ROUND_TRIPS, 50); i++) {
    const started = process.hrtime.bigint()
    ssh.run('true')
    sshTimes.push(Number(process.hrtime.bigint() - started) / 1e6)
  }
  sshTimes.sort((a, b) => a - b)
}

// Sequential I/O: through the mount (volumes/) and, as the yardstick, the local disk beneath it.
const volume = join(mnt, 'nodes', 'bench', 'volumes', 'bench')
await mkdir(volume)
const local = join(root, 'local.bin')
const rows = []
const targets = [['mount (volumes/)', join(volume, 'file.bin')], ['local disk', local]]
if (!ssh.missing) targets.push(['sshfs', join(ssh.mnt, 'file.bin')])
for (const [where, file] of targets) {
  const write = dd(['if=/dev/zero', `of=${file}`, `count=${FILE_MIB}`, 'conv=fsync'])
  execFileSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true'])
  const read = dd([`if=${file}`, 'of=/dev/null'])
  rows.push([where, write, read])
}

// Metadata and cache: the same trees in each place, made on the disk beneath it.
const meta = join(mnt, 'nodes', 'bench', 'volumes', 'meta')
await mkdir(meta)
const places = [['mount', meta, join(root, 'home', 'nodes', 'bench', 'volumes', 'meta')], ['disk', join(root, 'local-meta'), join(root, 'local-meta')]]
if (!ssh.missing) places.push(['sshfs', join(ssh.mnt, 'meta'), join(ssh.remote, 'meta')])
for (const [, seen, onDisk] of places) {
  await mkdir(onDisk, { recursive: true })
  prepare(onDisk, seen, root)
}
const metaFigures = places.map(([name, seen]) => [name, measure(seen)])

const pad = (s, n) => String(s).padEnd(n)
console.log('\nHerds benchmark')
console.log(`exec round trip (write cmd "true", read exit), ${ROUND_TRIPS} runs`)
console.log(`  ${pad('p50', 8)}${times[Math.floor(times.length / 2)].toFixed(1)} ms`)
console.log(`  ${pad('p99', 8)}${percentile(times, 99).toFixed(1)} ms`)
console.log(`  ${pad('max', 8)}${times.at(-1).toFixed(1)} ms`)
if (ssh.missing) console.log(`  (no ssh baseline: ${ssh.missing})`)
else console.log(`  ssh 127.0.0.1 true, ${sshTimes.length} runs: p50 ${sshTimes[Math.floor(sshTimes.length / 2)].toFixed(1)} ms, p99 ${percentile(sshTimes, 99).toFixed(1)} ms`)
console.log(`\nsequential ${FILE_MIB} MiB, dd bs=1M`)
console.log(`  ${pad('', 20)}${pad('write MB/s', 13)}read MB/s`)
for (const [where, write, read] of rows) console.log(`  ${pad(where, 20)}${pad(write.toFixed(0), 13)}${read.toFixed(0)}`)
const [mount, disk, sshfs] = rows
console.log(`  ${pad('mount / disk', 20)}${pad((mount[1] / disk[1]).toFixed(2), 13)}${(mount[2] / disk[2]).toFixed(2)}`)
if (sshfs) console.log(`  ${pad('mount / sshfs', 20)}${pad((mount[1] / sshfs[1]).toFixed(2), 13)}${(mount[2] / sshfs[2]).toFixed(2)}`)
printMetadata(metaFigures, ssh.missing)
process.exit(0) // runs cleanup: stops herds up, unmounts, removes the temporary home
