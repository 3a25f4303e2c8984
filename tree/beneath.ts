/**
 * Resolving a tree path beneath a root so that what is checked is what is
 * used. On Linux the directory is opened first and then checked: the kernel
 * says where the open descriptor really is (/proc/self/fd/N), and the caller
 * acts through `/proc/self/fd/N/name`, a name the kernel resolves to exactly
 * that open directory, however the folders are renamed or swapped for links
 * meanwhile. Elsewhere (macOS has no such names) the parent is resolved with
 * realpath and checked; that check can race a swap, as docs/security.md says.
 */
import { existsSync } from 'node:fs'
import { open, readlink, realpath } from 'node:fs/promises'
import { join, sep } from 'node:path'
import { HerdsError } from './errno.js'

/** A directory opened beneath the root, to act in by name. */
export interface Place {
  /** A path naming exactly this directory (not followed anew by name on Linux). */
  readonly dir: string
  /** The path of `name` inside it. */
  at (name: string): string
  close (): Promise<void>
}

const O_DIRECTORY = 0o200000
/** Linux's O_PATH: a descriptor that names a file without opening it for I/O. */
export const O_PATH = 0o10000000

/** Does this machine offer /proc/self/fd names for open directories? */
export const DESCRIPTOR_RELATIVE = process.platform === 'linux' && existsSync('/proc/self/fd')

/** Resolves paths beneath one root directory. */
export class Beneath {
  private readonly root: string
  private realRoot = ''

  constructor (root: string) {
    this.root = root
  }

  /**
   * Opens the directory at `parts` (links followed, as long as they end
   * inside the root). EACCES if it lies outside the root.
   */
  async directory (parts: readonly string[], path: string): Promise<Place> {
    return DESCRIPTOR_RELATIVE ? this.opened(parts, path) : this.checked(parts, path)
  }

  /** Opens the parent of `parts` (the last name is left for the caller, never followed). */
  async parent (parts: readonly string[], path: string): Promise<Place> {
    return this.directory(parts.slice(0, -1), path)
  }

  /** Opens the folder, then asks the kernel where the descriptor is: the check is on what was opened. */
  private async opened (parts: readonly string[], path: string): Promise<Place> {
    const handle = await open(join(this.root, ...parts), O_DIRECTORY)
    const dir = `/proc/self/fd/${handle.fd}`
    try {
      if (!(await this.contains(await readlink(dir)))) throw new HerdsError('EACCES', `${path} leads outside its tree through a symbolic link`)
    } catch (err) {
      await handle.close()
      throw err
    }
    return { dir, at: (name) => `${dir}/${name}`, close: () => handle.close() }
  }

  /** The fallback: the directory's real path, checked to lie inside the root. */
  private async checked (parts: readonly string[], path: string): Promise<Place> {
    const real = await realpath(join(this.root, ...parts))
    if (!(await this.contains(real))) {
      throw new HerdsError('EACCES', `${path} leads outside its tree through a symbolic link`)
    }
    return { dir: real, at: (name) => join(real, name), close: async () => {} }
  }

  /** Is this real path (as the kernel reports it for a descriptor) inside the root? */
  async contains (real: string): Promise<boolean> {
    this.realRoot ||= await realpath(this.root)
    return real === this.realRoot || real.startsWith(this.realRoot + sep)
  }
}
