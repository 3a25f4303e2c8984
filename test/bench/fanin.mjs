// The host under fan-in: NODES node connections and MOUNTS mount sessions (the
// SDK's WebSocket transport, no FUSE), each session doing a getattr and a
// 64 KiB read of a file on one of the nodes, in a loop, for SECONDS. Prints
// p50/p99 per operation, the errors, and the host's memory. The host runs in
// a process of its own, the nodes in another and the sessions in a third, so
// the figures are the host's, not the load's.
//   node test/bench/fanin.mjs            (run by `npm run bench` too)
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const SELF = fileURLToPath(import.meta.url)
const DIST = resolve(SELF, '../../../dist')
const NODES = Number(process.env.BENCH_FANIN_NODES ?? 100)
const MOUNTS = Number(process.env.BENCH_FANIN_MOUNTS ?? 100)
const SECONDS = Number(process.env.BENCH_FANIN_SECONDS ?? 30)
const FILE = '/volumes/v/file.bin'

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))]

/**
 * Calls `start(i)` for i < count, GROUP at a time: the host lets one address
 * hold only 32 connections that are not yet WebSockets (host/upgrades.ts),
 * and here every connection comes from 127.0.0.1.
 */
async function inGroups (count, start) {
  const GROUP = 16
  const all = []
  for (let i = 0; i < count; i += GROUP) {
    all.push(...await Promise.all(Array.from({ length: Math.min(GROUP, count - i) }, (_, j) => start(i + j))))
  }
  return all
}

/** Dials `count` nodes serving `dir`, says "ready" once all are welcomed, and serves until killed. */
async function runNodes (url, token, dir, count) {
  const { Dialer } = await import(join(DIST, 'tree/dial.js'))
  const { LocalTree } = await import(join(DIST, 'tree/local.js'))
  const { PROTOCOL_VERSION } = await import(join(DIST, 'tree/wire.js'))
  const { nodeInfo } = await import(join(DIST, 'nodes/info.js'))
  const tree = new LocalTree(dir)
  await inGroups(count, (i) => {
    const name = `fan${i}`
    const dialer = new Dialer({ url, token, hello: { t: 'hello', role: 'node', protocol: PROTOCOL_VERSION, name, info: nodeInfo(name) }, onConnect: (peer) => peer.serve(tree) })
    return dialer.start()
  })
  console.log('ready')
}

/** Opens `count` sessions, runs the loop for `seconds`, prints the figures as JSON. */
async function runMounts (url, token, count, seconds, nodes) {
  const { Herds } = await import(join(DIST, 'mount/sdk/index.js'))
  const sessions = await inGroups(count, () => Herds.connect({ url, token }))
  const times = { getattr: [], read: [] }
  let errors = 0
  let firstError
  const until = Date.now() + seconds * 1000
  await Promise.all(sessions.map(async (herds, i) => {
    const path = `/nodes/fan${i % nodes}${FILE}`
    while (Date.now() < until) {
      for (const [op, call] of [['getattr', () => herds.files.stat(path)], ['read', () => herds.files.read(path)]]) {
        const started = process.hrtime.bigint()
        try {
          await call()
          times[op].push(Number(process.hrtime.bigint() - started) / 1e6)
        } catch (err) {
          errors++
          firstError ??= String(err.message ?? err)
        }
      }
    }
  }))
  for (const herds of sessions) herds.close()
  const figures = Object.fromEntries(Object.entries(times).map(([op, list]) => {
    list.sort((a, b) => a - b)
    return [op, { count: list.length, p50: percentile(list, 50), p99: percentile(list, 99), max: list.at(-1) }]
  }))
  console.log(JSON.stringify({ figures, errors, firstError }))
  process.exit(0)
}

/** Waits for `pattern` in what `child` prints; resolves with the match. */
function waitFor (child, pattern, what) {
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`${what} did not start:\n${out}`)), 60_000)
    child.stdout.on('data', (d) => {
      out += d
      const match = out.match(pattern)
      if (match) { clearTimeout(timer); resolve(match) }
    })
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${what} ended (${code}):\n${out}`)) })
  })
}

/** CPU seconds a process has used so far (user and system), from /proc. */
function cpuOf (pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** The host's resident memory now and at its peak (MiB), from /proc. */
function memoryOf (pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (key) => Number(status.match(new RegExp(`${key}:\\s+(\\d+)`))?.[1] ?? 0)
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 }
}

/** Runs the whole fan-in and returns its figures. */
export async function fanIn () {
  const root = mkdtempSync(join(tmpdir(), 'herds-fanin-'))
  const children = []
  const start = (args, env = {}) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, HERDS_HOME: join(root, 'home'), ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    return child
  }
  try {
    const host = start([join(DIST, 'cli/herds.js'), 'host', '--port', '0'])
    const [, url] = await waitFor(host, /host\s+(ws:\/\/\S+)/, 'herds host')
    const token = readFileSync(join(root, 'home', 'host', 'admin.token'), 'utf8').trim()
    const data = join(root, 'data')
    mkdirSync(join(data, 'volumes', 'v'), { recursive: true })
    writeFileSync(join(data, FILE), Buffer.alloc(64 * 1024, 7))
    const idle = memoryOf(host.pid)
    await waitFor(start([SELF, 'nodes', url, token, data, String(NODES)]), /ready/, 'the nodes')
    const withNodes = memoryOf(host.pid)
    const mounts = start([SELF, 'mounts', url, token, String(MOUNTS), String(SECONDS), String(NODES)])
    const before = children.map((child) => cpuOf(child.pid))
    const [line] = await waitFor(mounts, /\{.*\}\n/, 'the sessions')
    const cpu = children.map((child, i) => cpuOf(child.pid) - before[i])
    return { ...JSON.parse(line), memory: { idle, withNodes, after: memoryOf(host.pid) }, cpu }
  } finally {
    for (const child of children) child.kill('SIGKILL')
    rmSync(root, { recursive: true, force: true })
  }
}

/** Prints the figures of fanIn(). */
export function printFanIn ({ figures, errors, firstError, memory, cpu }) {
  console.log(`\nhost fan-in: ${NODES} node connections, ${MOUNTS} sessions (SDK over WebSocket) doing getattr and 64 KiB reads for ${SECONDS} s`)
  for (const [op, f] of Object.entries(figures)) {
    console.log(`  ${op.padEnd(8)}${String(f.count).padStart(8)} done   p50 ${f.p50?.toFixed(1)} ms   p99 ${f.p99?.toFixed(1)} ms   max ${f.max?.toFixed(1)} ms`)
  }
  console.log(`  errors  ${errors}${firstError ? ` (first: ${firstError})` : ''}`)
  const mib = (m) => `${m.rss.toFixed(0)} MiB`
  console.log(`  CPU during the load: host ${cpu[0].toFixed(1)} s, nodes ${cpu[1].toFixed(1)} s, sessions ${cpu[2].toFixed(1)} s (of ${SECONDS} s, 2 cores here)`)
  console.log(`  host RSS: ${mib(memory.idle)} alone, ${mib(memory.withNodes)} with the nodes, ${mib(memory.after)} after the load (peak ${memory.after.peak.toFixed(0)} MiB)`)
}

const [role, ...args] = process.argv.slice(2)
if (role === 'nodes') await runNodes(args[0], args[1], args[2], Number(args[3]))
else if (role === 'mounts') await runMounts(args[0], args[1], Number(args[2]), Number(args[3]), Number(args[4]))
else if (process.argv[1] === SELF) printFanIn(await fanIn())
