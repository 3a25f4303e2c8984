/** The environment of jobs on this node: the node's own, minus Herds' internals. */
export function jobEnv (): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith('HERDS_TOKEN')) env[key] = value
  }
  return env
}
