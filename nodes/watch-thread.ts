/**
 * One watched root, in a thread of its own (see ./watch.ts): an inotify watch
 * on each of its folders (fs.watch, one per folder), whose events name what
 * changed, so a change costs the same in a folder of ten names or of ten
 * thousand; changes gathered and sent as tree paths, and a flood told
 * instead of followed. However many events the kernel queues for this
 * folder, they are read here, never on the node's own thread.
 */
import { constants, lstatSync, readdirSync, watch, type FSWatcher, type Stats } from 'node:fs'
import { basename, join, relative, sep } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parentPort, workerData } from 'node:worker_threads'
import { Gathered, type Changed } from '../tree/changed.js'

/** What the thread is given: the root, as ./watch.ts describes it. */
export interface ThreadRoot {
  dir: string
  at: string
  inside?: string
  /** More events than this within batchMs is a flood. */
  floodEvents: number
  /** The most paths one report holds (MAX_CHANGED of the wire; given, so the thread loads no zod or msgpack). */
  maxChanged: number
  batchMs: number
  tickMs: number
}

/** What the thread tells the node's thread. */
export type ThreadNews =
  | { t: 'changed', changes: Changed }
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

/** What `full` names now, as S_IFMT bits; 0 for nothing. */
function typeOf (full: string): number {
  try {
    return lstatSync(full).mode & constants.S_IFMT
  } catch {
    return 0
  }
}

/** A folder's watch, and the folder's inode number when it was watched (a folder put in its place is another). */
interface Watched { watcher: FSWatcher, ino: number }

/** The watches of one root's folders, by full path on this machine. */
class Folders {
  private readonly watches = new Map<string, Watched>()
  /** Folders that could not be watched (out of inotify watches, say): reported as changed every tick. */
  readonly blind = new Set<string>()

  constructor (private readonly root: ThreadRoot, private readonly heard: (dir: string, type: string, name: string | null) => void) {}

  /** Watches `dir` and every folder below it the tree shows; each watched before it is listed, so nothing made meanwhile is missed. */
  add (dir: string): void {
    const queue = [dir]
    for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
      if (this.watches.has(next) || treePathOf(this.root, next) === undefined) continue
      try {
        const { ino } = lstatSync(next)
        const watcher = watch(next, { persistent: true }, (type, name) => this.heard(next, type, name))
        // A folder removed or unwatchable later: its parent's event tells of it, or it counts as blind.
        watcher.on('error', () => { this.drop(next); this.blind.add(next) })
        this.watches.set(next, { watcher, ino })
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
    for (const [path, { watcher }] of this.watches) {
      if (path === dir || path.startsWith(dir + sep)) {
        watcher.close()
        this.watches.delete(path)
      }
    }
    for (const path of this.blind) if (path === dir || path.startsWith(dir + sep)) this.blind.delete(path)
  }

  /**
   * After a 'rename' event for `full`: what is there now, as S_IFMT bits (0
   * for nothing), and watched if a folder; or 'same' for the folder that was
   * watched there (inotify tells a folder's change of attributes as a rename).
   */
  follow (full: string): number | 'same' {
    let now: Stats | undefined
    try { now = lstatSync(full) } catch { /* gone */ }
    const was = this.watches.get(full)
    if (now?.isDirectory() && was?.ino === now.ino) return 'same'
    if (was) this.drop(full)
    if (now?.isDirectory()) this.add(full)
    return now ? now.mode & constants.S_IFMT : 0
  }

  close (): void {
    for (const { watcher } of this.watches.values()) watcher.close()
    this.watches.clear()
  }
}

/** Runs the watch of `root`, telling `tell` what happens. */
function runThread (root: ThreadRoot, tell: (news: ThreadNews) => void): void {
  const pending = new Gathered()
  let timer: NodeJS.Timeout | undefined
  // Events counted in the current window, checked as they come: a flood can hold off every timer.
  let windowStart = 0
  let count = 0
  let flooded = false
  const send = (): void => {
    timer = undefined
    tell({ t: 'changed', changes: pending.take(root.maxChanged) })
  }
  /** Gathers a change of `kind` to the file `full` on this machine, if the tree shows it. */
  const report = (full: string, kind: 'paths' | 'attrs' | number): void => {
    const path = treePathOf(root, full)
    if (path === undefined) return
    pending.add(kind === 'paths' ? { paths: [path] } : kind === 'attrs' ? { paths: [], attrs: [path] } : { paths: [], names: [[path, kind]] })
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
    // No name: the kernel's queue overflowed; all of it counts.
    if (name === null) return report(dir, 'paths')
    const full = join(dir, name)
    // An event of the folder itself (its times, say; its removal) comes named as the folder, as if of
    // a file of that name in it: both count. (Its parent's watch tells of it too, but a root has none.)
    if (name === basename(dir) && type !== 'rename') report(dir, 'attrs')
    else if (name === basename(dir) && typeOf(dir) === 0) report(dir, 0)
    // 'rename': a name came or went (made, removed, moved); 'change' is the file's content or attributes.
    const there = type === 'rename' ? folders.follow(full) : 'same'
    report(full, there === 'same' ? 'attrs' : there)
  })
  folders.add(root.dir)
  if (folders.blind.size > 0) tell({ t: 'error', message: `could not watch ${[...folders.blind].slice(0, 3).join(', ')}${folders.blind.size > 3 ? ' and more' : ''}` })
  tell({ t: 'ready' })
  // Proof of life; and what could not be watched counts as changed at every tick.
  setInterval(() => {
    for (const dir of folders.blind) report(dir, 'paths')
    tell({ t: 'tick' })
  }, root.tickMs)
}

if (parentPort) {
  const port = parentPort
  runThread(workerData as ThreadRoot, (news) => port.postMessage(news))
}
