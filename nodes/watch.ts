/**
 * Watching what a node exports (volumes, sandbox workspaces, exports) with
 * chokidar, so a change made on the node itself, by a job or by a person,
 * reaches every mount (through the host) and no mount serves what it cached
 * before.
 */
import { relative, sep } from 'node:path'
import { watch, type FSWatcher } from 'chokidar'
import { MAX_CHANGED } from '../tree/wire.js'

export interface WatchRoot {
  /** The folder on this machine. */
  dir: string
  /** Its path in the node's tree ("/volumes", "/fs/photos"). */
  at: string
  /**
   * For a folder holding more than the tree shows: maps a path relative to
   * `dir` to its tree path, or undefined to ignore it (a sandbox's job output).
   */
  map?: (rel: string[]) => string | undefined
}

/** Changes are gathered this long and sent as one frame. */
const BATCH_MS = 50
/** A root whose watch failed is reported as changed this often. */
const BLIND_EVERY_MS = 1000

export interface Watching {
  close (): Promise<void>
}

/** Watches `roots`; calls `onChange` with tree paths that changed, a batch at a time. */
export function watchRoots (roots: WatchRoot[], onChange: (paths: string[]) => void, onError: (err: Error) => void = () => {}): Watching {
  let pending = new Set<string>()
  const blind = new Map<string, NodeJS.Timeout>()
  let timer: NodeJS.Timeout | undefined
  const send = (): void => {
    timer = undefined
    let paths = [...pending]
    pending = new Set()
    // A flood (an unpacked archive) is sent as its folders: the mount drops what is under them.
    if (paths.length > MAX_CHANGED) paths = [...new Set(paths.map((p) => p.slice(0, p.lastIndexOf('/')) || '/'))]
    // Still too many folders: every root counts as changed, which is never wrong.
    if (paths.length > MAX_CHANGED) paths = roots.map((root) => root.at)
    onChange(paths)
  }
  const watchers: FSWatcher[] = roots.map((root) => {
    const treePath = (full: string): string | undefined => {
      const rel = relative(root.dir, full)
      if (rel === '..' || rel.startsWith('..' + sep)) return undefined
      const parts = rel === '' ? [] : rel.split(sep)
      if (root.map) return root.map(parts)
      return parts.length ? `${root.at}/${parts.join('/')}` : root.at
    }
    const watcher = watch(root.dir, {
      ignoreInitial: true,
      // Every change counts, editors' temporary files (~, .swp) included.
      atomic: false,
      followSymlinks: false,
      ignorePermissionErrors: true,
      // Not even watched: what the tree does not show (a sandbox's jobs, home, record).
      ignored: (full: string) => treePath(full) === undefined && full !== root.dir,
    })
    watcher.on('all', (_event, full) => {
      const path = treePath(full)
      if (path === undefined) return
      pending.add(path)
      timer ??= setTimeout(send, BATCH_MS)
    })
    // Out of inotify watches, say: from then on the whole root counts as changed every second,
    // so mounts keep nothing of it longer than that.
    watcher.on('error', (err) => {
      onError(err as Error)
      if (!blind.has(root.at)) blind.set(root.at, setInterval(() => { pending.add(root.at); timer ??= setTimeout(send, BATCH_MS) }, BLIND_EVERY_MS))
    })
    return watcher
  })
  return {
    close: async () => {
      clearTimeout(timer)
      for (const interval of blind.values()) clearInterval(interval)
      await Promise.all(watchers.map((w) => w.close()))
    },
  }
}
