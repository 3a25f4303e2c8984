/**
 * The node daemon: serves this machine's tree (exec/, and more to come) to the
 * host it dials. Outbound only; it reconnects on its own.
 */
import { mkdir } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { Dialer } from '../tree/dial.js'
import { trackHandles } from '../tree/handles.js'
import { LocalTree } from '../tree/local.js'
import { jsonFile, SyntheticTree } from '../tree/synthetic.js'
import type { Tree } from '../tree/tree.js'
import { PROTOCOL_VERSION } from '../tree/wire.js'
import { Runner } from '../venoms/run/runner.js'
import { execDir } from '../venoms/run/tree.js'
import { nodeInfo, nodeMetrics } from './info.js'
import { lmdbJobStore, openNodeDb } from './store.js'
import { jobEnv } from './env.js'

export interface NodeOptions {
  /** The host's WebSocket URL, e.g. ws://127.0.0.1:7070. */
  host: string
  name: string
  /** Where this node keeps its state (HERDS_HOME/nodes/<name>). */
  home: string
  /** The working directory of exec/ jobs; default <home>/workspace. */
  workspace?: string
}

export interface RunningNode {
  name: string
  tree: Tree
  dialer: Dialer
  stop (): Promise<void>
}

/** The shell that runs a command line: sh, or the user's login shell on macOS. */
function jobShell (): string {
  if (process.platform === 'darwin') return os.userInfo().shell || '/bin/zsh'
  return '/bin/sh'
}

/** Builds this node's tree over its runner. */
export function nodeTree (runner: Runner, volumesDir: string): Tree {
  return new SyntheticTree({
    kind: 'dir',
    entries: {
      'status.json': jsonFile(() => nodeMetrics(runner.ids().filter((id) => runner.get(id)?.running).length)),
      exec: execDir(runner),
      volumes: { kind: 'tree', tree: new LocalTree(volumesDir) },
    },
  })
}

/** Starts the node: opens its store, loads its jobs, and dials the host. */
export async function startNode (opts: NodeOptions): Promise<RunningNode> {
  await mkdir(opts.home, { recursive: true })
  const db = openNodeDb(join(opts.home, 'db'))
  const workspace = opts.workspace ?? join(opts.home, 'workspace')
  await mkdir(workspace, { recursive: true })
  const runner = new Runner({
    cwd: workspace,
    env: jobEnv(),
    shell: jobShell(),
    outputDir: join(opts.home, 'jobs'),
    store: lmdbJobStore(db),
  })
  await runner.load()
  const volumes = join(opts.home, 'volumes')
  await mkdir(volumes, { recursive: true })
  const tree = nodeTree(runner, volumes)
  const dialer = new Dialer({
    url: opts.host,
    hello: { t: 'hello', role: 'node', protocol: PROTOCOL_VERSION, name: opts.name, info: nodeInfo(opts.name) },
    onConnect: (peer) => {
      // What the host opened through a connection it lost, it can no longer close.
      const session = trackHandles(tree)
      peer.serve(session.tree)
      peer.on('close', () => { void session.releaseAll() })
    },
  })
  try {
    await dialer.start()
  } catch (err) {
    await db.close()
    throw err
  }
  return {
    name: opts.name,
    tree,
    dialer,
    stop: async () => {
      dialer.stop()
      await runner.stopAll()
      await db.close()
    },
  }
}
