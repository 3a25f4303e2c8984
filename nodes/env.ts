/**
 * The environment of jobs on this node: the node's own, minus Herds' internals
 * and minus what a launcher added. Under `npm start` npm adds dozens of
 * npm_* variables and puts Herds' own node_modules/.bin first on PATH, so a
 * job's `tsc` would be Herds' copy; jobs get the user's environment instead.
 */

/** Variables npm run sets for its script, besides the npm_* ones. */
const NPM_ADDS = new Set(['INIT_CWD', 'NODE', 'COLOR', '_'])

export function jobEnv (from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const underNpm = from.npm_lifecycle_event !== undefined || from.npm_execpath !== undefined
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(from)) {
    if (value === undefined || key.startsWith('HERDS_TOKEN')) continue
    if (underNpm && (key.startsWith('npm_') || NPM_ADDS.has(key))) continue
    env[key] = value
  }
  if (underNpm && env.PATH) env.PATH = withoutNpmPath(env.PATH)
  return env
}

/** PATH without the folders npm run put in front (node_modules/.bin of every parent, its node-gyp shim). */
function withoutNpmPath (path: string): string {
  return path.split(':').filter((dir) => !/\/node_modules\/\.bin\/?$/.test(dir) && !dir.includes('/@npmcli/run-script/lib/node-gyp-bin')).join(':')
}
