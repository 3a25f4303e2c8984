/**
 * One watched root, in a thread of its own (see ./watch.ts): an inotify watch
 * on each of its folders (fs.watch, one per folder), whose events name what
 * changed, so a change costs the same in a folder of ten names or of ten
 * thousand; changes gathered and sent as tree paths, and a flood told
 * instead of followed. However many events the kernel queues for this
 * folder, they are read here, never on the node's own thread.
 */
import { lstatSync, readdirSync, watch, type FSWatcher } from 'node:fs'
import { join, relative, sep } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parentPort, workerData } from 'node:worker_threads'

/** What the thread is given: the root, as ./watch.ts describes it. */
export interface ThreadRoot {
  dir: string
  at: string
  inside?: string
  /** More events than this within batchMs is a flood. */
  floodEvents: number
  /** The most paths one report holds (MAX_CHANGED of the wire; given, so the thread loads nothing of ours). */
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

/** The watches of one root's folders, by full path on this machine. */
class Folders {
  private readonly watches = new Map<string, FSWatcher>()
  /** Folders that could not be watched (out of inotify watches, say): reported as changed every tick. */
  readonly blind = new Set<string>()

  constructor (private readonly root: ThreadRoot, private readonly heard: (dir: string, type: string, name: string | null) => void) {}

  /** Watches `dir` and every folder below it the tree shows; each watched before it is listed, so nothing made meanwhile is missed. */
  add (dir: string): void {
    const queue = [dir]
    for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
      if (this.watches.has(next) || treePathOf(this.root, next) === undefined) continue
      try {
        const watcher = watch(next, { persistent: true }, (type, name) => this.heard(next, type, name))
        // A folder removed or unwatchable later: its parent's event tells of it, or it counts as blind.
        watcher.on('error', () => { this.drop(next); this.blind.add(next) })
        this.watches.set(next, watcher)
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code !== 'ENOENT' && code !== 'ENOTDIR') this.blind.add(next)
        continue
      }
      try {
        for (const entry of readdirSync(next, { withFileTypes: true })) {
          if (entry.isDirectory()) queue.push(join(next, entry.name))
        }
      } catch { /* gone meanwhile: its parent's event tells of it */ }
    }
  }

  /** Stops watching `dir` and everything below it (removed, or renamed away: its watches would name it wrongly). */
  drop (dir: string): void {
    for (const [path, watcher] of this.watches) {
      if (path === dir || path.startsWith(dir + sep)) {
        watcher.close()
        this.watches.delete(path)
      }
    }
    for (const path of this.blind) if (path === dir || path.startsWith(dir + sep)) this.blind.delete(path)
  }

  /** After an event for `full`: a folder now there is watched, one gone is let go. */
  follow (full: string): void {
    let isDir = false
    try { isDir = lstatSync(full).isDirectory() } catch { /* gone */ }
    if (isDir) this.add(full)
    else if (this.watches.has(full)) this.drop(full)
  }

  close (): void {
    for (const watcher of this.watches.values()) watcher.close()
    this.watches.clear()
  }
}

/** Runs the watch of `root`, telling `tell` what happens. */
function runThread (root: ThreadRoot, tell: (news: ThreadNews) => void): void {
  let pending = new Set<string>()
  let timer: NodeJS.Timeout | undefined
  // Events counted in the current window, checked as they come: a flood can hold off every timer.
  let windowStart = 0
  let count = 0
  let flooded = false
  const send = (): void => {
    timer = undefined
    const paths = foldChanged([...pending], root.at, root.maxChanged)
    pending = new Set()
    tell({ t: 'changed', paths })
  }
  const report = (full: string): void => {
    const path = treePathOf(root, full)
    if (path === undefined) return
    pending.add(path)
    timer ??= setTimeout(send, root.batchMs)
  }
  const folders: Folders = new Folders(root, (dir, type, name) => {
    if (flooded) return
    const now = performance.now()
    if (now - windowStart >= root.batchMs) { windowStart = now; count = 0 }
    if (++count > root.floodEvents) {
      flooded = true
      // Closing takes the watches out of the kernel at once, so no more events queue up behind these.
      folders.close()
      clearTimeout(timer)
      tell({ t: 'flood' })
      return
    }
    // No name: the kernel's queue overflowed, or the folder itself changed; all of it counts.
    if (name === null) return report(dir)
    const full = join(dir, name)
    // 'rename': a name came or went (made, removed, moved); 'change' is the file's content or attributes.
    if (type === 'rename') folders.follow(full)
    report(full)
  })
  folders.add(root.dir)
  if (folders.blind.size > 0) tell({ t: 'error', message: `could not watch ${[...folders.blind].slice(0, 3).join(', ')}${folders.blind.size > 3 ? ' and more' : ''}` })
  tell({ t: 'ready' })
  // Proof of life; and what could not be watched counts as changed at every tick.
  setInterval(() => {
    for (const dir of folders.blind) report(dir)
    tell({ t: 'tick' })
  }, root.tickMs)
}

if (parentPort) {
  const port = parentPort
  runThread(workerData as ThreadRoot, (news) => port.postMessage(news))
}
