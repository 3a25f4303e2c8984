/** /.herds/catalog: read-only discovery for people and agents (DESIGN §7). */
import type { Registry } from '../host/registry.js'
import type { JobIndex } from '../host/store.js'
import { jsonSchema, SCHEMAS } from '../control/schemas.js'
import { jsonFile, textFile, type SynthDir } from '../tree/synthetic.js'
import { RUN_README } from '../venoms/run/readme.js'
import { CATALOG_README } from './readme.js'
import { exposurePath, type Exposures } from '../host/ports.js'

/** How many jobs jobs.json lists. */
const RECENT_JOBS = 500

export interface CatalogDeps {
  registry: Registry
  jobs: JobIndex
  exposures: Exposures
  /** The host's URL for browsers, for the exposed ports' URLs. */
  baseUrl (): string
  /** health.json: the host's version, uptime, nodes online, mounts connected. */
  health (): unknown
}

export function catalogDir (deps: CatalogDeps): SynthDir {
  const { registry, jobs, health } = deps
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
      'health.json': jsonFile(health),
      'jobs.json': jsonFile(() => jobs.recent(RECENT_JOBS)),
      'ports.json': jsonFile(() => deps.exposures.all().map((e) => ({ ...e, url: `${deps.baseUrl()}${exposurePath(e)}/` }))),
      venoms: { kind: 'dir', entries: { 'run.md': textFile(RUN_README) } },
      schemas: {
        kind: 'dir',
        entries: Object.fromEntries(Object.keys(SCHEMAS).map((name) => [`${name}.json`, jsonFile(() => jsonSchema(name))])),
      },
    },
  }
}
