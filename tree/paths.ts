/** Path helpers shared by every tree. Tree paths are absolute and normalised. */

/** Splits a tree path into its names: "/a/b" → ["a", "b"], "/" → []. */
export function splitPath (path: string): string[] {
  return path.split('/').filter((part) => part !== '' && part !== '.')
}

/** Joins names into a tree path: ["a", "b"] → "/a/b". */
export function joinPath (parts: readonly string[]): string {
  return '/' + parts.join('/')
}

/** The folder that holds `path` ("/a/b" → "/a", "/a" → "/"). */
export function folderOf (path: string): string {
  return path.slice(0, path.lastIndexOf('/')) || '/'
}

/** The path of `name` in the folder `dir` (both normalised). */
export function childOf (dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`
}

/** The longest name in a path, as on every file system Herds serves. */
export const NAME_MAX = 255

/**
 * Can `name` stand in a listing? One name of 1 to 255 bytes, without "/" or
 * NUL, and neither "." nor "..": anything else a node lists could not be
 * looked up again, or would name another file.
 */
export function isEntryName (name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0') && Buffer.byteLength(name) <= NAME_MAX
}
