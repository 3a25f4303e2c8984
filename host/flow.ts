/**
 * How the host slows a node that sends more than it can act on: it stops
 * reading that node's connection for a while (the node's frames then wait in
 * its own buffers), instead of queueing what it sends.
 */
import type { Peer } from '../tree/peer.js'

/** Frames of one kind a node may send per second; Herds' node sends at most about 20. */
export const MAX_NOTICES_PER_SECOND = 50
/** Job reports from one node being written to the index at once. */
export const MAX_REPORTS_IN_FLIGHT = 4

/** Returns a counter of frames: past `perSecond` in a second, `peer` is not read until the second is over. */
export function limitRate (peer: Peer, perSecond: number): () => void {
  let start = Date.now()
  let count = 0
  return () => {
    const now = Date.now()
    if (now - start >= 1000) { start = now; count = 0 }
    if (++count !== perSecond) return
    const release = peer.hold()
    setTimeout(release, 1000 - (now - start)).unref()
  }
}

/** Returns a tracker of work done for `peer`: while `max` pieces are unfinished, `peer` is not read. */
export function limitBusy (peer: Peer, max: number): (work: Promise<unknown>) => void {
  let busy = 0
  let release: (() => void) | undefined
  return (work) => {
    if (++busy >= max) release ??= peer.hold()
    void work.finally(() => {
      if (--busy < max && release) { release(); release = undefined }
    }).catch(() => {})
  }
}
