/**
 * herds doctor: checks what a mount and a connection need, one line each,
 * and says exactly how to fix what is wrong.
 */
import { readdirSync, statSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { Herds } from '../mount/sdk/index.js'
import { checkFuseDevice, chooseFuseLayer, fuseInstallHint, libfuse3InstallHint, loadFuseLibrary } from '../mount/fuse.js'
import { toHerdsError } from '../tree/errno.js'
import { hasFileCalls } from '../tree/native.js'
import type { Access } from './access.js'

export interface Check {
  name: string
  ok: boolean
  /** What was found. */
  detail: string
  /** How to fix it, when not ok. */
  fix?: string
}

const onPath = (command: string): boolean => (process.env.PATH ?? '').split(delimiter).some((dir) => {
  try { return statSync(join(dir, command)).isFile() } catch { return false }
})

/** Runs each check; a check that throws is a failed check, never a crash. */
export async function runChecks (opts: { mountpoint: string, url: string, access: () => Promise<Access> }): Promise<Check[]> {
  const checks: Check[] = []
  const check = async (name: string, work: () => Promise<string> | string, fix: (message: string) => string): Promise<void> => {
    try {
      checks.push({ name, ok: true, detail: await work() })
    } catch (err) {
      const message = toHerdsError(err).message
      // The fix is given on its own line; a message that carries one already need not say it twice.
      checks.push({ name, ok: false, detail: message.replace(/\): install .*$/, ')'), fix: fix(message) })
    }
  }
  await check('Node.js', () => {
    const major = Number(process.versions.node.split('.')[0])
    if (major < 20) throw new Error(`Node.js ${process.versions.node} is too old`)
    return process.versions.node
  }, () => 'install Node.js 20 or later')
  if (process.platform === 'linux') {
    await check('FUSE device', () => { checkFuseDevice(); return '/dev/fuse' }, (m) => m.replace(/^.*\((.*)\)$/, '$1'))
    await check('fusermount', () => {
      if (!onPath('fusermount3') && !onPath('fusermount')) throw new Error('neither fusermount3 nor fusermount is on PATH')
      return 'on PATH'
    }, () => fuseInstallHint())
  }
  // The FUSE layer the mount will use: our libfuse3 binding, or the fuse-native fallback (named, with why).
  await check('FUSE layer', () => {
    const { layer, why } = chooseFuseLayer()
    if (layer === 'libfuse3') return 'libfuse3 (the binding loads)'
    loadFuseLibrary()
    return `fuse-native on libfuse 2, the fallback: ${why ?? ''} (no interrupts, short kernel caches, no mmap; ${libfuse3InstallHint()})`
  }, () => fuseInstallHint())
  // The node's own file calls (tree/native): what a volume offers beyond what Node's fs can do.
  await check('file calls', () => {
    if (!hasFileCalls()) throw new Error('tree/native is not built: a node here refuses fifos, sockets, extended attributes and rename flags (ENOTSUP)')
    return 'fifos, sockets, extended attributes and rename flags (tree/native loads)'
  }, () => 'run npm run setup again with a C compiler (gcc or clang), make and python3 installed')
  await check('mountpoint', () => mountpointState(opts.mountpoint), (m) => m.includes('not connected')
    ? `a crashed mount is left there: ${process.platform === 'darwin' ? 'umount -f' : 'fusermount -uz'} ${opts.mountpoint}`
    : `use an empty directory (--mount DIR), or empty ${opts.mountpoint}`)
  let access: Access | undefined
  await check('token', async () => { access = await opts.access(); return 'found' }, () => 'give --token, set HERDS_TOKEN, or run herds token show on the host\'s machine')
  if (access) {
    const given = access
    await check('host', async () => {
      const herds = await Herds.connect({ url: opts.url, token: given.token, ca: given.ca })
      try {
        const health = await herds.health()
        const nodes = health.nodes as { online: number, known: number }
        return `${opts.url}: host ${String(health.version)}, ${nodes.online} of ${nodes.known} node(s) online; the token is accepted`
      } finally {
        herds.close()
      }
    }, (m) => m.includes('401') || m.includes('EACCES') || m.includes('token')
      ? 'the host refused the token: make a new one (herds token create, or herds token show on the host\'s machine) and give it with --token or HERDS_TOKEN'
      : m.includes('certificate')
        ? 'trust the host\'s certificate: --ca FILE, or NODE_EXTRA_CA_CERTS=FILE'
        : `start a host there (herds up, or herds host), or point at yours with --host URL or HERDS_URL`)
  }
  return checks
}

/** What is at the mountpoint: missing (made on mount), empty, a live Herds mount, or a problem. */
function mountpointState (dir: string): string {
  let entries: string[]
  try {
    entries = readdirSync(dir)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return `${dir} does not exist; herds makes it when it mounts`
    if (code === 'ENOTCONN' || code === 'ENXIO') throw new Error(`${dir}: ${code} (not connected: a crashed mount)`)
    throw new Error(`${dir}: ${(err as Error).message}`)
  }
  if (entries.includes('.herds') || (entries.includes('nodes') && entries.includes('README.md'))) return `${dir} is a Herds mount now`
  if (entries.length > 0) throw new Error(`${dir} is not empty (${entries.length} entries); its files would be hidden by the mount`)
  return `${dir} is empty`
}

/** Prints the checks; returns whether all passed. */
export function printChecks (checks: Check[], write: (line: string) => void): boolean {
  for (const c of checks) {
    write(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(12)} ${c.detail}`)
    if (!c.ok && c.fix) write(`      ${''.padEnd(12)} fix: ${c.fix}`)
  }
  const failed = checks.filter((c) => !c.ok).length
  write(failed === 0 ? 'Everything is in place.' : `${failed} problem(s) found; fix them as shown, then run herds doctor again.`)
  return failed === 0
}
