/**
 * A node's ports/ folders as the namespace shows them: the host's exposures
 * (ports/<port>/, with url and status.json) over the node's own (README.md,
 * and tcp/ for connections, venoms/ports). mkdir ports/<port> exposes that
 * port; rmdir, no more, and its connections close. A port that is not exposed
 * is not there, so the kernel lets mkdir through.
 */
import { HerdsError } from '../tree/errno.js'
import { callOp, treeFromCall } from '../tree/peer.js'
import { rooted } from '../tree/rooted.js'
import { jsonFile, SyntheticTree, textFile, type SynthDir } from '../tree/synthetic.js'
import type { Tree } from '../tree/tree.js'
import { parsePort } from '../venoms/ports/tree.js'
import { exposurePath, type Exposure, type Exposures } from './ports.js'
import { offline, type NodeEntry } from './registry.js'

/** Paths of a node's tree that are a ports/ folder or below one: the node's own, or a sandbox's. */
const PORTS_AT = /^(?:\/sandboxes\/[^/]+)?\/ports(?:\/|$)/
/** A sandbox itself: its rmdir takes its exposures with it. */
const SANDBOX_AT = /^\/sandboxes\/([^/]+)$/

export interface PortsDeps {
  exposures: Exposures
  /** The host's URL for browsers (http://127.0.0.1:7077), for url files. */
  baseUrl (): string
}

/** The node's tree, with the host's ports/ folders over its own. */
export function withExposures (entry: NodeEntry, node: Tree, deps: PortsDeps): Tree {
  const overlay = new SyntheticTree({
    kind: 'dir',
    entries: {
      ports: portsFolder(entry, node, deps, null),
      sandboxes: { kind: 'dir', lookup: (sandbox) => ({ kind: 'dir', entries: { ports: portsFolder(entry, node, deps, sandbox) } }) },
    },
  })
  return treeFromCall((op, args, ctx) => {
    const path = typeof args[0] === 'string' ? args[0] : ''
    const sandbox = op === 'rmdir' ? path.match(SANDBOX_AT)?.[1] : undefined
    if (sandbox !== undefined) return callOp(node, op, args, ctx).then(async (done) => { await deps.exposures.forgetSandbox(entry.name, sandbox); return done })
    return callOp(PORTS_AT.test(path) ? overlay : node, op, args, ctx)
  })
}

function portsFolder (entry: NodeEntry, node: Tree, deps: PortsDeps, sandbox: string | null): SynthDir {
  const at = sandbox === null ? '/ports' : `/sandboxes/${sandbox}/ports`
  const live = (path: string): Tree | HerdsError => entry.link.connected ? rooted(node, path) : offline(entry)
  const exposed = (e: Exposure): SynthDir => ({
    kind: 'dir',
    entries: {
      url: textFile(() => `${deps.baseUrl()}${exposurePath(e)}/\n`),
      'status.json': jsonFile(() => ({ ...e, url: `${deps.baseUrl()}${exposurePath(e)}/`, ...deps.exposures.trafficOf(e) })),
    },
  })
  return {
    kind: 'dir',
    mode: 0o755,
    list: () => deps.exposures.of(entry.name, sandbox).map((e) => String(e.port)),
    lookup: (name) => {
      const port = parsePort(name)
      const e = port === undefined ? undefined : deps.exposures.get(entry.name, sandbox, port)
      return e && exposed(e)
    },
    union: () => live(at),
    mkdir: async (name) => {
      const port = parsePort(name)
      if (port === undefined) throw new HerdsError('EINVAL', `ports/ holds port numbers, 1 to 65535, not ${JSON.stringify(name.slice(0, 80))}`)
      await checkExposable(entry, node, sandbox)
      await deps.exposures.add({ node: entry.name, sandbox: sandbox ?? undefined, port, public: false }, null)
    },
    rmdir: async (name) => {
      const port = parsePort(name)
      if (port === undefined) throw new HerdsError('ENOENT', `ports/ holds port numbers, not ${JSON.stringify(name.slice(0, 80))}`)
      await deps.exposures.remove(entry.name, sandbox, port)
    },
  }
}

/** A port can be exposed on a node that is online, and in a sandbox that is there and has a network. */
export async function checkExposable (entry: NodeEntry, node: Tree, sandbox: string | null): Promise<void> {
  if (!entry.link.connected) throw offline(entry)
  if (sandbox === null) return
  const status = await readJson(node, `/sandboxes/${sandbox}/status.json`).catch((err: unknown) => {
    if ((err as HerdsError).code === 'ENOENT') throw new HerdsError('ENOENT', `no sandbox named ${sandbox} on ${entry.name}`)
    throw err
  }) as { network?: boolean, fence?: string }
  if (status.network === false && status.fence !== 'none') throw new HerdsError('EACCES', `sandbox ${sandbox} has "network": false: nothing can connect to its ports`)
}

async function readJson (tree: Tree, path: string): Promise<unknown> {
  const fh = await tree.open(path, 0)
  try {
    const chunks: Buffer[] = []
    for (let offset = 0; offset < 1024 * 1024;) {
      const chunk = await tree.read(path, fh, offset, 64 * 1024)
      if (chunk.length === 0) break
      chunks.push(Buffer.from(chunk))
      offset += chunk.length
    }
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } finally {
    await tree.release(path, fh).catch(() => {})
  }
}
