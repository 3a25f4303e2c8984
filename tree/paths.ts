/** Path helpers shared by every tree. Tree paths are absolute and normalised. */
import { HerdsError } from './errno.js'

/** Splits a tree path into its names: "/a/b" → ["a", "b"], "/" → []. */
export function splitPath (path: string): string[] {
  return path.split('/').filter((part) => part !== '' && part !== '.')
}

/** Joins names into a tree path: ["a", "b"] → "/a/b". */
export function joinPath (parts: readonly string[]): string {
  return '/' + parts.join('/')
}

/**
 * Validates and normalises a path that arrived from outside (a wire frame, a
 * user). Refuses "..", NUL and control characters instead of resolving them, so
 * no path can climb out of the tree it was sent to.
 */
export function normalizePath (path: string): string {
  const parts = splitPath(path)
  for (const part of parts) {
    if (part === '..') throw new HerdsError('EACCES', `"..": paths may not climb out of their tree: ${path}`)
    if (/[\0]/.test(part)) throw new HerdsError('EINVAL', 'a path may not contain NUL')
    if (Buffer.byteLength(part) > 255) throw new HerdsError('ENAMETOOLONG', `name too long: ${part.slice(0, 40)}…`)
  }
  return joinPath(parts)
}

/**
 * Is this a name a user may give a node, job, sandbox or volume? No "/", no "..",
 * no control characters, no leading dot, at most 64 characters.
 */
export function isSafeName (name: string): boolean {
  return /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(name)
}
