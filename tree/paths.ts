/** Path helpers shared by every tree. Tree paths are absolute and normalised. */

/** Splits a tree path into its names: "/a/b" → ["a", "b"], "/" → []. */
export function splitPath (path: string): string[] {
  return path.split('/').filter((part) => part !== '' && part !== '.')
}

/** Joins names into a tree path: ["a", "b"] → "/a/b". */
export function joinPath (parts: readonly string[]): string {
  return '/' + parts.join('/')
}

/** The path of `name` in the folder `dir` (both normalised). */
export function childOf (dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`
}
