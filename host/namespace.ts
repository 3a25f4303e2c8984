/**
 * The namespace: the host's mount table (DESIGN §3). /nodes/<name> routes to
 * that node's remote tree; /.herds holds control, the catalog, and the run
 * venom of the default node.
 */
import { catalogDir, type CatalogDeps } from '../catalog/tree.js'
import { controlDir, type ControlDeps } from '../control/tree.js'
import { HerdsError } from '../tree/errno.js'
import { rooted } from '../tree/rooted.js'
import { jsonFile, SyntheticTree, textFile, type SynthDir } from '../tree/synthetic.js'
import type { Tree } from '../tree/tree.js'
import { nodeStatus } from './status.js'
import { noSuchNode, offline, type NodeEntry } from './registry.js'
import { ROOT_README } from './readme.js'
import { withExposures, type PortsDeps } from './portsdir.js'

export interface NamespaceDeps extends ControlDeps, CatalogDeps, PortsDeps {
  /** The node /.herds/venoms/run runs on (--default-node); else the first to have connected. */
  defaultNode?: string
}

/** Builds the namespace tree the host serves to mounts. */
export function namespaceTree (deps: NamespaceDeps): Tree {
  const { registry } = deps
  return new SyntheticTree({
    kind: 'dir',
    entries: {
      'README.md': textFile(ROOT_README),
      nodes: {
        kind: 'dir',
        list: () => registry.names(),
        lookup: (name) => {
          const entry = registry.get(name)
          return entry && nodeDir(entry, deps)
        },
        missing: (name) => noSuchNode(registry, name),
      },
      '.herds': {
        kind: 'dir',
        entries: {
          control: controlDir(deps),
          catalog: catalogDir(deps),
          venoms: {
            kind: 'dir',
            entries: {
              run: {
                kind: 'dir',
                union: () => {
                  const entry = deps.defaultNode ? registry.get(deps.defaultNode) : registry.first()
                  if (!entry) return new HerdsError('EHOSTDOWN', deps.defaultNode ? `the default node "${deps.defaultNode}" has not connected yet` : 'no node has connected yet')
                  return entry.link.connected ? rooted(entry.link.tree, '/exec') : offline(entry)
                },
              },
            },
          },
        },
      },
    },
  })
}

/** Each node's tree with the host's ports/ over it, made once: it holds the handles opened there. */
const overlaid = new WeakMap<NodeEntry, Tree>()

/** /nodes/<name>: info.json and status.json from the host, merged over the node's own tree (and its ports/ over that). */
function nodeDir (entry: NodeEntry, deps: PortsDeps): SynthDir {
  let tree = overlaid.get(entry)
  if (!tree) overlaid.set(entry, tree = withExposures(entry, entry.link.tree, deps))
  return {
    kind: 'dir',
    entries: {
      'info.json': jsonFile(() => entry.info),
      'status.json': jsonFile(() => nodeStatus(entry)),
    },
    union: () => entry.link.connected ? tree : offline(entry),
  }
}
