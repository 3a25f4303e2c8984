/** The version of Herds, from package.json. */
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

function findVersion (): string {
  // dist/tree/version.js and tree/version.ts sit at different depths.
  for (const candidate of ['../package.json', '../../package.json']) {
    try {
      const pkg = require(candidate) as { name?: string, version?: string }
      if (pkg.name === 'herds' && pkg.version) return pkg.version
    } catch { /* try the next */ }
  }
  return '0.0.0'
}

export const VERSION = findVersion()
