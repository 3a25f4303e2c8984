/** /.herds/catalog: read-only discovery for people and agents (DESIGN §7). */
import type { Registry } from '../host/registry.js'
import type { JobIndex } from '../host/store.js'
import { jsonFile, textFile, type SynthDir } from '../tree/synthetic.js'

const CATALOG_README = `# /.herds/catalog — what is here, read-only

- nodes.json   every node the host knows: name, online, os, arch, hostname, version, lastSeen
- jobs.json    the 500 most recent jobs across nodes, newest first: node, id, state, cmd,
               exitCode, signal, createdAt, startedAt, endedAt, durationMs. Kept by the host
               across restarts; a node that was away reports what happened when it is back.
`

/** How many jobs jobs.json lists. */
const RECENT_JOBS = 500

export function catalogDir (registry: Registry, index: JobIndex): SynthDir {
  return {
    kind: 'dir',
    entries: {
      'README.md': textFile(CATALOG_README),
      'nodes.json': jsonFile(() => registry.all().map((entry) => ({
        name: entry.name,
        online: entry.link.connected,
        os: entry.info.os,
        arch: entry.info.arch,
        hostname: entry.info.hostname,
        version: entry.info.version,
        connectedAt: entry.link.connected ? entry.connectedAt : null,
        lastSeen: entry.lastSeen,
      }))),
      'jobs.json': jsonFile(() => index.recent(RECENT_JOBS)),
    },
  }
}
