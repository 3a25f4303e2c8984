// Listening beyond loopback (issue 5): wss:// with a certificate, a mount that trusts it with --ca,
// and a plain ws:// listener on a public address refused unless --insecure is said out loud.
import { execFileSync } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { adminToken, spawnHerds, tempDir, unmountAtTeardown } from './harness.js'

/** A self-signed certificate for 127.0.0.1, as a person would make one with openssl. */
function selfSigned (dir: string, san = 'subjectAltName=IP:127.0.0.1'): { cert: string, key: string } {
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=herds-test', '-addext', san, '-keyout', key, '-out', cert], { stdio: 'ignore' })
  return { cert, key }
}

t.test('a host with TLS serves wss://; a node and a mount that trust its certificate work through it', async (t) => {
  const root = tempDir(t)
  const { cert, key } = selfSigned(root)
  const host = spawnHerds(t, ['host', '--port', '0', '--tls-cert', cert, '--tls-key', key], root)
  const url = (await host.waitFor(/host\s+(wss:\/\/\S+)/))[1]
  const node = spawnHerds(t, ['node', '--host', url, '--ca', cert, '--name', 'studio'], root)
  await node.waitFor(/node\s+studio/)
  const mnt = join(root, 'mnt')
  unmountAtTeardown(t, mnt)
  const mount = spawnHerds(t, ['mount', '--ca', cert, url, mnt], root)
  await mount.waitFor(/mount\s+/)
  await writeFile(join(mnt, 'nodes', 'studio', 'exec', 'cmd'), 'echo over tls\n')
  t.equal(await readFile(join(mnt, 'nodes', 'studio', 'exec', 'stdout'), 'utf8'), 'over tls\n')

  const untrusting = spawnHerds(t, ['mount', '--token', adminToken(root), url, join(root, 'mnt2')], tempDir(t))
  unmountAtTeardown(t, join(root, 'mnt2'))
  t.equal(await untrusting.exited, 1, 'a mount that does not trust the certificate stops')
  t.match(untrusting.output(), /^herds: cannot reach the host at wss:\S+: self[- ]signed certificate/)
})

t.test('a public address without TLS is refused unless --insecure', async (t) => {
  const root = tempDir(t)
  const refused = spawnHerds(t, ['host', '--port', '0', '--listen', '0.0.0.0'], root)
  t.equal(await refused.exited, 1)
  t.match(refused.output(), /^herds: listening on 0\.0\.0\.0 would send tokens in clear: give --tls-cert and --tls-key, or --insecure/)
  const insecure = spawnHerds(t, ['host', '--port', '0', '--listen', '0.0.0.0', '--insecure'], root)
  t.match((await insecure.waitFor(/host\s+(ws:\/\/\S+)/))[1], /^ws:\/\/0\.0\.0\.0:\d+$/)
  const half = spawnHerds(t, ['host', '--port', '0', '--tls-cert', join(root, 'nope.pem')], tempDir(t))
  t.equal(await half.exited, 1)
  t.match(half.output(), /^herds: --tls-cert and --tls-key go together/)
})

t.test('herds up on all addresses with a certificate for a host name: its own node and mount still connect', async (t) => {
  const root = tempDir(t)
  const { cert, key } = selfSigned(root, 'subjectAltName=DNS:studio.example')
  const mnt = join(root, 'mnt')
  unmountAtTeardown(t, mnt)
  const up = spawnHerds(t, ['up', '--port', '0', '--listen', '0.0.0.0', '--tls-cert', cert, '--tls-key', key, '--name', 'studio', '--mount', mnt], root)
  await up.waitFor(/Ctrl-C to stop/, 20_000)
  t.match(up.output(), /host\s+wss:\/\/0\.0\.0\.0:\d+/)
  await writeFile(join(mnt, '.herds', 'venoms', 'run', 'cmd'), 'echo up over tls\n')
  t.equal(await readFile(join(mnt, '.herds', 'venoms', 'run', 'stdout'), 'utf8'), 'up over tls\n')
})
