/**
 * One watched root, in a thread of its own (see ./watch.ts): chokidar on the
 * folder, its changes gathered and sent as tree paths, and a flood told
 * instead of followed. However many events the kernel queues for this
 * folder, they are read here, never on the node's own thread.
 */
import { relative, sep } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parentPort, workerData } from 'node:worker_threads'
import { watch } from 'chokidar'

/** What the thread is given: the root, as ./watch.ts describes it. */
export interface ThreadRoot {
  dir: string
  at: string
  inside?: string
  /** More events than this within batchMs is a flood. */
  floodEvents: number
  /** The most paths one report holds (MAX_CHANGED of the wire; given, so the thread loads nothing but chokidar). */
  maxChanged: number
  batchMs: number
  tickMs: number
}

/** What the thread tells the node's thread. */
export type ThreadNews =
  | { t: 'changed', paths: string[] }
  | { t: 'ready' }
  | { t: 'flood' }
  | { t: 'error', message: string }
  | { t: 'tick' }

/** The tree path of a file under `root.dir`, or undefined for what the tree does not show. */
export function treePathOf (root: Pick<ThreadRoot, 'dir' | 'at' | 'inside'>, full: string): string | undefined {
  const rel = relative(root.dir, full)
  if (rel === '..' || rel.startsWith('..' + sep)) return undefined
  const parts = rel === '' ? [] : rel.split(sep)
  if (root.inside !== undefined && parts.length > 1 && parts[1] !== root.inside) return undefined
  return parts.length ? `${root.at}/${parts.join('/')}` : root.at
}

/** At most `max` paths: a flood of names is sent as their folders, and if still too many, as the root. */
export function foldChanged (paths: string[], at: string, max: number): string[] {
  if (paths.length > max) paths = [...new Set(paths.map((p) => p.slice(0, p.lastIndexOf('/')) || '/'))]
  return paths.length > max ? [at] : paths
}

/** Runs the watch of `root`, telling `tell` what happens. */
function runThread (root: ThreadRoot, tell: (news: ThreadNews) => void): void {
  let pending = new Set<string>()
  let timer: NodeJS.Timeout | undefined
  // Events counted in the current window, checked as they come: a flood can hold off every timer.
  let windowStart = 0
  let count = 0
  let flooded = false
  const watcher = watch(root.dir, {
    ignoreInitial: true,
    // Every change counts, editors' temporary files (~, .swp) included.
    atomic: false,
    followSymlinks: false,
    ignorePermissionErrors: true,
    // Not even watched: what the tree does not show (a sandbox's jobs, home, record).
    ignored: (full: string) => full !== root.dir && treePathOf(root, full) === undefined,
  })
  const send = (): void => {
    timer = undefined
    const paths = foldChanged([...pending], root.at, root.maxChanged)
    pending = new Set()
    tell({ t: 'changed', paths })
  }
  // 'raw' comes once for each event of the kernel, before chokidar does any work for it.
  watcher.on('raw', () => {
    const now = performance.now()
    if (now - windowStart >= root.batchMs) { windowStart = now; count = 0 }
    if (++count <= root.floodEvents || flooded) return
    flooded = true
    // Closing takes the watches out of the kernel at once, so no more events queue up behind these.
    void watcher.close()
    clearTimeout(timer)
    tell({ t: 'flood' })
  })
  watcher.on('all', (_event, full) => {
    if (flooded) return
    const path = treePathOf(root, full)
    if (path === undefined) return
    pending.add(path)
    timer ??= setTimeout(send, root.batchMs)
  })
  watcher.on('ready', () => { if (!flooded) tell({ t: 'ready' }) })
  watcher.on('error', (err) => tell({ t: 'error', message: (err as Error).message }))
  // Proof of life: a thread that stops ticking is held by events it cannot even count.
  setInterval(() => tell({ t: 'tick' }), root.tickMs)
}

if (parentPort) {
  const port = parentPort
  runThread(workerData as ThreadRoot, (news) => port.postMessage(news))
}
