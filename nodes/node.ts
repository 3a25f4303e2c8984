/**
 * The node daemon: serves this machine's tree (exec/, and more to come) to the
 * host it dials. Outbound only; it reconnects on its own.
 */
import { mkdir } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { changedPaths, Gathered, moveChanges, type Changed } from '../tree/changed.js'
import { Dialer } from '../tree/dial.js'
import type { WireSocket } from '../tree/link.js'
import { watchRoots } from './watch.js'
import { trackHandles } from '../tree/handles.js'
import { LocalTree } from '../tree/local.js'
import { safeTopNames } from '../tree/names.js'
import { splitPath } from '../tree/paths.js'
import { readOnly } from '../tree/readonly.js'
import { jsonFile, SyntheticTree, type SynthDir } from '../tree/synthetic.js'
import type { Tree } from '../tree/tree.js'
import { MAX_CHANGED, PROTOCOL_VERSION, type JobSummary } from '../tree/wire.js'
import type { JobRecord } from '../venoms/run/record.js'
import { closeFdsHelper } from '../venoms/run/launch.js'
import { terminalsOff } from '../venoms/run/pty.js'
import { Runner } from '../venoms/run/runner.js'
import { execDir } from '../venoms/run/tree.js'
import { portsDir } from '../venoms/ports/tree.js'
import { nodeInfo, nodeMetrics } from './info.js'
import { detectFence } from './fence.js'
import { Sandboxes } from './sandboxes.js'
import { lmdbJobStore, openNodeDb } from './store.js'
import { jobEnv } from './env.js'

export interface NodeOptions {
  /** The host's WebSocket URL, e.g. ws://127.0.0.1:7070. */
  host: string
  /** A node token for this name (or an admin token). */
  token?: string
  /** Extra TLS trust for a wss:// host with a self-signed certificate (PEM). */
  ca?: Buffer
  /** See DialOptions.pinned. */
  pinned?: boolean
  /** See DialOptions.open. */
  open?: () => WireSocket
  name: string
  /** Where this node keeps its state (HERDS_HOME/nodes/<name>). */
  home: string
  /** The working directory of exec/ jobs; default <home>/workspace. */
  workspace?: string
  /** Folders sandbox jobs must not read besides this node's home (HERDS_HOME, with the host's admin token). */
  hidden?: string[]
  /** Where the node says what goes wrong in the background. */
  log?: (line: string) => void
  /** Directories of this machine shown at fs/<name>/ (opt-in). */
  exports?: Export[]
  /** How long a job made by `new` or `mkdir` waits for its cmd before it expires (RUN_DEFAULTS.expireIdleMs when not given). */
  jobExpiryMs?: number
}

export interface Export {
  name: string
  path: string
  readOnly: boolean
}

export interface RunningNode {
  name: string
  tree: Tree
  dialer: Dialer
  stop (): Promise<void>
}

const IN_VOLUME = /^\/volumes(?:\/([^/]+)(\/.*)?)?$/

/**
 * A change in a volume is also a change where sandboxes show it
 * (workspace/<mount>); "/volumes" itself (a flood) stands for every place a
 * volume is shown. Past MAX_CHANGED paths in all, they are folded to their folders.
 */
function withVolumeMounts (changes: Changed, sandboxes: Sandboxes): Changed {
  const volumes = new Set(changedPaths(changes).flatMap((path) => { const match = path.match(IN_VOLUME); return match ? [match[1]] : [] }))
  if (volumes.size === 0) return changes
  const all = new Gathered()
  all.add(changes)
  for (const volume of volumes) {
    for (const [box, mount] of sandboxes.mountsOf(volume)) {
      all.add(moveChanges(changes, (path) => {
        const match = path.match(IN_VOLUME)
        return match && match[1] === volume ? `/sandboxes/${box}/workspace/${mount}${match[2] ?? ''}` : undefined
      }))
    }
  }
  return all.take(MAX_CHANGED)
}

/** How many recent jobs a node reports when it (re)connects. */
const REPORT_ON_CONNECT = 500

/** What the host's job index keeps of a job record. */
function jobSummary (record: JobRecord): JobSummary {
  const { id, state, cmd, exitCode, signal, createdAt, startedAt, endedAt, durationMs } = record
  return { id, state, cmd, exitCode, signal, createdAt, startedAt, endedAt, durationMs }
}

/** The shell that runs a command line: sh, or the user's login shell on macOS. */
function jobShell (): string {
  if (process.platform === 'darwin') return os.userInfo().shell || '/bin/zsh'
  return '/bin/sh'
}

/** Builds this node's tree over its runner. */
export function nodeTree (runner: Runner, volumesDir: string, exports: Export[] = [], sandboxes?: Sandboxes): Tree {
  const fs: SynthDir = { kind: 'dir', entries: {} }
  for (const ex of exports) {
    const local = new LocalTree(ex.path)
    fs.entries![ex.name] = { kind: 'tree', tree: ex.readOnly ? readOnly(local, `the export ${ex.name}`) : local }
  }
  return new SyntheticTree({
    kind: 'dir',
    entries: {
      'status.json': jsonFile(() => nodeMetrics(runner.ids().filter((id) => runner.get(id)?.running).length)),
      exec: execDir(runner),
      ports: portsDir(),
      // A volume a sandbox mounts is written by its jobs: links out of it are not shown there either.
      volumes: { kind: 'tree', tree: safeTopNames(new LocalTree(volumesDir, { linksOut: (path) => !sandboxes?.mountsOf(splitPath(path)[0] ?? '').length }), 'volume') },
      fs,
      ...(sandboxes ? { sandboxes: sandboxes.dir() } : {}),
    },
  })
}

/** Starts the node: opens its store, loads its jobs, and dials the host. */
export async function startNode (opts: NodeOptions): Promise<RunningNode> {
  await mkdir(opts.home, { recursive: true })
  const db = openNodeDb(join(opts.home, 'db'))
  const workspace = opts.workspace ?? join(opts.home, 'workspace')
  await mkdir(workspace, { recursive: true })
  const runLimits = opts.jobExpiryMs === undefined ? {} : { expireIdleMs: opts.jobExpiryMs }
  const runner = new Runner({
    cwd: workspace,
    env: jobEnv(),
    shell: jobShell(),
    outputDir: join(opts.home, 'jobs'),
    store: lmdbJobStore(db),
    limits: runLimits,
    onRecord: (record) => dialer.peer?.send({ t: 'jobs', jobs: [jobSummary(record)] }),
  })
  await runner.load()
  if (!closeFdsHelper()) opts.log?.('venoms/run/close-fds is not built (npm run setup, with a C compiler): jobs get /dev/null in place of the node\'s open files instead of having them closed')
  const noTerminals = terminalsOff()
  if (noTerminals) opts.log?.(noTerminals)
  const volumes = join(opts.home, 'volumes')
  await mkdir(volumes, { recursive: true })
  const sandboxes = new Sandboxes({
    root: join(opts.home, 'sandboxes'),
    volumes,
    db,
    shell: jobShell(),
    fence: detectFence(),
    hidden: [opts.home, ...(opts.hidden ?? [])],
    runLimits,
    onRecord: (sandbox, record) => dialer.peer?.send({ t: 'jobs', jobs: [jobSummary({ ...record, id: `${sandbox}/${record.id}` })] }),
  })
  await sandboxes.load()
  const tree = nodeTree(runner, volumes, opts.exports, sandboxes)
  const watching = watchRoots([
    { dir: volumes, at: '/volumes' },
    // A sandbox's folder: only the sandbox itself and its workspace are in the tree.
    { dir: join(opts.home, 'sandboxes'), at: '/sandboxes', inside: 'workspace' },
    ...(opts.exports ?? []).map((ex) => ({ dir: ex.path, at: `/fs/${ex.name}` })),
  ], (changes) => dialer.peer?.send({ t: 'changed', ...withVolumeMounts(changes, sandboxes) }), {
    onError: (err) => opts.log?.(`watching for changes: ${err.message} (those folders are reported as changed four times a second)`),
    onFlood: (at, restMs) => opts.log?.(`watching for changes: ${at} changes faster than it can be followed; reported as changed every second for ${restMs / 1000} s`),
  })
  const dialer = new Dialer({
    url: opts.host,
    token: opts.token,
    ca: opts.ca,
    pinned: opts.pinned,
    open: opts.open,
    hello: { t: 'hello', role: 'node', protocol: PROTOCOL_VERSION, name: opts.name, info: nodeInfo(opts.name) },
    onConnect: (peer) => {
      // What the host opened through a connection it lost, it can no longer close.
      const session = trackHandles(tree)
      peer.serve(session.tree)
      // The host may have missed job ends while away (or restarted): tell it the recent ones.
      const all = [
        ...runner.all().map((job) => job.record),
        ...sandboxes.records().map(({ sandbox, record }) => ({ ...record, id: `${sandbox}/${record.id}` })),
      ]
      const recent = all.filter((r) => r.startedAt).sort((a, b) => b.startedAt!.localeCompare(a.startedAt!)).slice(0, REPORT_ON_CONNECT)
      if (recent.length) peer.send({ t: 'jobs', jobs: recent.map(jobSummary) })
      peer.on('close', () => { void session.releaseAll() })
    },
  })
  try {
    await dialer.start()
  } catch (err) {
    await watching.close()
    await sandboxes.stopAll()
    await db.close()
    throw err
  }
  return {
    name: opts.name,
    tree,
    dialer,
    stop: async () => {
      dialer.stop()
      await watching.close()
      await Promise.all([runner.stopAll(), sandboxes.stopAll()])
      await db.close()
    },
  }
}
