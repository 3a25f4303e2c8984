/**
 * The namespace: the host's mount table (DESIGN §3). /nodes/<name> routes to
 * that node's remote tree; /.herds holds the catalog (and, later, control).
 */
import { catalogDir } from '../catalog/tree.js'
import { jsonFile, SyntheticTree, textFile, type SynthDir } from '../tree/synthetic.js'
import type { Tree } from '../tree/tree.js'
import { nodeStatus } from './status.js'
import { offline, type NodeEntry, type Registry } from './registry.js'
import { ROOT_README } from './readme.js'
import type { JobIndex } from './store.js'

/** Builds the namespace tree the host serves to mounts. */
export function namespaceTree (registry: Registry, index: JobIndex): Tree {
  return new SyntheticTree({
    kind: 'dir',
    entries: {
      'README.md': textFile(ROOT_README),
      nodes: {
        kind: 'dir',
        list: () => registry.names(),
        lookup: (name) => {
          const entry = registry.get(name)
          return entry && nodeDir(entry)
        },
      },
      '.herds': {
        kind: 'dir',
        entries: { catalog: catalogDir(registry, index) },
      },
    },
  })
}

/** /nodes/<name>: info.json and status.json from the host, merged over the node's own tree. */
function nodeDir (entry: NodeEntry): SynthDir {
  return {
    kind: 'dir',
    entries: {
      'info.json': jsonFile(() => entry.info),
      'status.json': jsonFile(() => nodeStatus(entry)),
    },
    union: () => entry.link.connected ? entry.link.tree : offline(entry),
  }
}
