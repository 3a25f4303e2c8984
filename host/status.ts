/** A node's status.json, as the host sees it: its connection, and the node's own metrics. */
import type { NodeEntry } from './registry.js'
import { readWhole } from '../tree/bind.js'

export async function nodeStatus (entry: NodeEntry): Promise<Record<string, unknown>> {
  const metrics = (await readNodeJson(entry, '/status.json')) as Record<string, unknown> | undefined
  return {
    name: entry.name,
    online: entry.link.connected,
    connectedAt: entry.link.connected ? entry.connectedAt : null,
    lastSeen: entry.lastSeen,
    load: metrics?.load ?? null,
    freeMemory: metrics?.freeMemory ?? null,
    runningJobs: metrics?.runningJobs ?? null,
  }
}

/** Reads a JSON file from a node, or undefined when it cannot be had. */
async function readNodeJson (entry: NodeEntry, path: string): Promise<unknown> {
  if (!entry.link.connected) return undefined
  try {
    return JSON.parse((await readWhole(entry.link.tree, path)).toString('utf8'))
  } catch {
    return undefined
  }
}
