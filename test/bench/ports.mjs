// Ports in the bench: an HTTP server on this machine (the node is this machine), reached directly,
// through `herds forward` and through the host's exposed URL; throughput of one big download and
// the latency of small requests, each on a connection of its own.
import { spawn } from 'node:child_process'
import { createServer, request } from 'node:http'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'

const MIB = Number(process.env.BENCH_PORT_MIB ?? 256)
const REQUESTS = Number(process.env.BENCH_PORT_REQUESTS ?? 200)

/** One GET on a fresh connection; resolves with the bytes of the body. */
function get (url, headers = {}) {
  return new Promise((resolve, reject) => {
    request(url, { headers, agent: false }, (res) => {
      let bytes = 0
      res.on('data', (c) => { bytes += c.length }).on('end', () => resolve(bytes)).on('error', reject)
    }).on('error', reject).end()
  })
}

async function measureAt (base, headers) {
  const started = process.hrtime.bigint()
  const bytes = await get(`${base}big`, headers)
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  if (bytes !== MIB * 1024 * 1024) throw new Error(`${base}big gave ${bytes} bytes`)
  const times = []
  for (let i = 0; i < REQUESTS; i++) {
    const t0 = process.hrtime.bigint()
    await get(`${base}small`, headers)
    times.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  times.sort((a, b) => a - b)
  return { mbs: bytes / 1e6 / seconds, p50: times[Math.floor(times.length / 2)], p99: times[Math.floor(times.length * 0.99)] }
}

/**
 * Runs the three side by side under a running `herds up` (its mount at `mnt`,
 * HERDS_HOME `home`, node `node`); `bin` is dist/cli/herds.js.
 */
export async function portsBench ({ bin, home, mnt, node, running }) {
  const piece = Buffer.alloc(1024 * 1024, 0x78)
  const server = createServer((req, res) => {
    if (req.url.endsWith('/small')) return res.end('ok\n')
    res.writeHead(200, { 'content-length': MIB * piece.length })
    let left = MIB
    const pump = () => { while (left > 0) { left--; if (!res.write(piece)) return res.once('drain', pump) } res.end() }
    pump()
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  running.push(() => server.close())
  const port = server.address().port
  const forward = spawn(process.execPath, [bin, 'forward', '--node', node, `0:${port}`], { env: { ...process.env, HERDS_HOME: home }, stdio: ['ignore', 'pipe', 'inherit'], detached: true })
  running.push(() => { try { process.kill(-forward.pid, 'SIGKILL') } catch {} })
  const local = await new Promise((resolve, reject) => {
    let out = ''
    forward.stdout.on('data', (d) => { out += d; const m = out.match(/forwarding 127\.0\.0\.1:(\d+)/); if (m) resolve(Number(m[1])) })
    forward.once('exit', () => reject(new Error(`herds forward ended: ${out}`)))
  })
  await mkdir(join(mnt, 'nodes', node, 'ports', String(port)))
  const url = (await readFile(join(mnt, 'nodes', node, 'ports', String(port), 'url'), 'utf8')).trim()
  const token = (await readFile(join(home, 'host', 'admin.token'), 'utf8')).trim()
  const rows = [
    ['direct', await measureAt(`http://127.0.0.1:${port}/`, {})],
    ['herds forward', await measureAt(`http://127.0.0.1:${local}/`, {})],
    ['exposed by the host', await measureAt(url, { authorization: `Bearer ${token}` })],
  ]
  try { process.kill(-forward.pid, 'SIGINT') } catch {}
  server.close()
  return rows
}

export function printPorts (rows) {
  const pad = (s, n) => String(s).padEnd(n)
  const direct = rows[0][1]
  console.log(`\nports: an HTTP server on the node, ${MIB} MiB download, then ${REQUESTS} small GETs each on a new connection (herds up)`)
  console.log(`  ${pad('', 22)}${pad('MB/s', 8)}${pad('÷ direct', 10)}${pad('p50 ms', 9)}${pad('p99 ms', 9)}`)
  for (const [name, r] of rows) console.log(`  ${pad(name, 22)}${pad(r.mbs.toFixed(0), 8)}${pad((r.mbs / direct.mbs).toFixed(2), 10)}${pad(r.p50.toFixed(2), 9)}${pad(r.p99.toFixed(2), 9)}`)
}
