/** /.herds/catalog: read-only discovery for people and agents (DESIGN §7). */
import type { Registry } from '../host/registry.js'
import { jsonFile, textFile, type SynthDir } from '../tree/synthetic.js'

const CATALOG_README = `# /.herds/catalog — what is here, read-only

- nodes.json   every node the host knows: name, online, os, arch, hostname, version, lastSeen
`

export function catalogDir (registry: Registry): SynthDir {
  return {
    kind: 'dir',
    entries: {
      'README.md': textFile(CATALOG_README),
      'nodes.json': jsonFile(() => registry.all().map((entry) => ({
        name: entry.name,
        online: entry.remote !== undefined,
        os: entry.info.os,
        arch: entry.info.arch,
        hostname: entry.info.hostname,
        version: entry.info.version,
        connectedAt: entry.remote ? entry.connectedAt : null,
        lastSeen: entry.lastSeen,
      }))),
    },
  }
}
