/**
 * Watching what a node exports (volumes, sandbox workspaces, exports) with
 * inotify (fs.watch on each folder), so a change made on the node itself, by
 * a job or by a person, reaches every mount (through the host) and no mount
 * serves what it cached before.
 *
 * The work is bounded, so a job cannot take the node's thread (and with it
 * the heartbeats) by changing files as fast as it can: each root is watched
 * in a thread of its own, and a root that changes faster than the watch can
 * follow (a job swapping names in a loop) has its thread ended, is reported
 * as changed every second, and is watched again after a rest.
 */
import { Worker } from 'node:worker_threads'
import type { Changed } from '../tree/changed.js'
import { MAX_CHANGED } from '../tree/wire.js'
import type { ThreadNews, ThreadRoot } from './watch-thread.js'

export interface WatchRoot {
  /** The folder on this machine. */
  dir: string
  /** Its path in the node's tree ("/volumes", "/fs/photos"). */
  at: string
  /**
   * For a folder of folders of which the tree shows one sub-folder each (a
   * sandbox's "workspace"): that sub-folder's name; the rest is not watched.
   */
  inside?: string
}

/** Changes are gathered this long and sent as one frame. */
const BATCH_MS = 50
/** A root whose watch failed, or that is let go under a flood, is reported as changed this often. */
const BLIND_EVERY_MS = 1000
/** More events than this from one root within BATCH_MS is a flood (20,000 a second). */
export const FLOOD_EVENTS = 1000
/** A flooded root is watched again after this long, doubled for each flood within CALM_MS of that, up to MAX_REST_MS. */
const FIRST_REST_MS = 1000
const MAX_REST_MS = 60_000
const CALM_MS = 60_000
/** A watch thread says it is alive this often; one silent for STUCK_MS is ended as if flooded. */
const TICK_MS = 250
const STUCK_MS = 3000

/** The thread's module, as built (.js) or, under the test runner, as written (.ts). */
const THREAD = new URL(import.meta.url.endsWith('.ts') ? './watch-thread.ts' : './watch-thread.js', import.meta.url)

export interface Watching {
  close (): Promise<void>
}

export interface WatchEvents {
  /** Some folders could not be watched (out of inotify watches): from then on they are reported as changed four times a second. */
  onError?: (err: Error) => void
  /** A root changed faster than the watch follows: it is let go for `restMs` and reported as changed meanwhile. */
  onFlood?: (at: string, restMs: number) => void
}

/** Watches `roots`; calls `onChange` with what changed (tree paths, by kind), a batch at a time. */
export function watchRoots (roots: WatchRoot[], onChange: (changes: Changed) => void, events: WatchEvents = {}): Watching {
  const watches = roots.map((root) => watchRoot(root, onChange, events))
  return { close: async () => { await Promise.all(watches.map((w) => w.close())) } }
}

/** One root: its thread while it keeps up; the whole root reported as changed while it does not. */
function watchRoot (root: WatchRoot, onChange: (changes: Changed) => void, events: WatchEvents): Watching {
  let thread: Worker | undefined
  let lastNews = 0
  let blind: NodeJS.Timeout | undefined
  let rearm: NodeJS.Timeout | undefined
  let closed = false
  let restMs = 0
  /** When the root was last watched again after a rest. */
  let backAt = -Infinity
  const report = (changes: Changed): void => { if (!closed) onChange(changes) }
  const all: Changed = { paths: [root.at] }

  const goBlind = (): void => {
    report(all)
    blind ??= setInterval(() => report(all), BLIND_EVERY_MS)
  }
  const seeAgain = (): void => {
    clearInterval(blind)
    blind = undefined
    // What changed between the last report and the watch being back is not known.
    report(all)
  }

  /** Ends the thread and its watches, and watches the root again after a rest; `flooded` says why, in the log. */
  const letGo = (flooded: boolean): void => {
    restMs = Date.now() - backAt < CALM_MS ? Math.min(MAX_REST_MS, restMs * 2) : FIRST_REST_MS
    void thread?.terminate()
    thread = undefined
    goBlind()
    if (flooded) events.onFlood?.(root.at, restMs)
    rearm = setTimeout(arm, restMs)
  }

  const arm = (): void => {
    rearm = undefined
    if (closed) return
    const data: ThreadRoot = { dir: root.dir, at: root.at, inside: root.inside, floodEvents: FLOOD_EVENTS, maxChanged: MAX_CHANGED, batchMs: BATCH_MS, tickMs: TICK_MS }
    const mine = new Worker(THREAD, { workerData: data })
    thread = mine
    lastNews = Date.now()
    if (restMs) backAt = lastNews
    // The node may stop while this thread runs: it must not keep the process up.
    mine.unref()
    mine.on('message', (news: ThreadNews) => {
      if (thread !== mine) return
      lastNews = Date.now()
      if (news.t === 'changed') report(news.changes)
      else if (news.t === 'flood') letGo(true)
      else if (news.t === 'ready' && restMs) seeAgain()
      // Out of inotify watches, say: the thread reports those folders as changed at every tick,
      // so mounts keep nothing of them longer than that; the rest is watched as before.
      else if (news.t === 'error') events.onError?.(new Error(news.message))
    })
    // A thread that failed is a watch that failed: its root counts as changed until it is back.
    mine.on('error', (err) => {
      if (thread !== mine) return
      events.onError?.(err)
      letGo(false)
    })
    mine.on('exit', () => { if (thread === mine && !closed) letGo(false) })
  }

  // A thread held by more events than it can count is ended too.
  const watchdog = setInterval(() => { if (thread && Date.now() - lastNews > STUCK_MS) letGo(true) }, STUCK_MS)
  watchdog.unref()
  arm()
  return {
    close: async () => {
      closed = true
      clearTimeout(rearm)
      clearInterval(blind)
      clearInterval(watchdog)
      const last = thread
      thread = undefined
      await last?.terminate()
    },
  }
}
