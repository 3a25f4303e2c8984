/**
 * Resolving a tree path beneath a root so that what is checked is what is
 * used. On Linux every folder on the way is opened relative to the one before
 * it (`/proc/self/fd/N/<name>`, O_NOFOLLOW), so the walk never leaves the root:
 * a link on the way is read and its target walked the same way, if it is
 * relative and stays inside. The caller acts through `/proc/self/fd/N/<name>`,
 * a name the kernel resolves to exactly the folder that was walked, however
 * the folders are renamed or swapped for links meanwhile. Elsewhere (macOS has
 * no such names) the folder is resolved with realpath and checked; that check
 * can race a swap, as docs/security.md says.
 */
import { closeSync, existsSync } from 'node:fs'
import { lstat, open, readlink, realpath, type FileHandle } from 'node:fs/promises'
import { join, sep } from 'node:path'
import { HerdsError } from './errno.js'
import { openBeneath } from './native.js'

/** A directory opened beneath the root, to act in by name. */
export interface Place {
  /** A path naming exactly this directory (not followed anew by name on Linux). */
  readonly dir: string
  /** The path of `name` inside it. */
  at (name: string): string
  close (): Promise<void>
}

const O_DIRECTORY = 0o200000
const O_NOFOLLOW = 0o400000
/** Linux's O_PATH: a descriptor that names a file without opening it for I/O. */
export const O_PATH = 0o10000000
/** Links followed while resolving one path, as the kernel's own limit. */
const MAX_LINKS = 40

/** Does this machine offer /proc/self/fd names for open directories? */
export const DESCRIPTOR_RELATIVE = process.platform === 'linux' && existsSync('/proc/self/fd')

/** Resolves paths beneath one root directory. */
export class Beneath {
  private readonly root: string
  private readonly kernelWalk: boolean
  private realRoot = ''

  /** `kernelWalk` false: always walk name by name (as where openat2 is missing; for tests of that walk). */
  constructor (root: string, { kernelWalk = true }: { kernelWalk?: boolean } = {}) {
    this.root = root
    this.kernelWalk = kernelWalk
  }

  /**
   * Opens the directory at `parts` (links followed, as long as they stay
   * inside the root). EACCES if the way leads outside the root.
   */
  async directory (parts: readonly string[], path: string): Promise<Place> {
    if (!DESCRIPTOR_RELATIVE) return this.checked(parts, path)
    return (this.kernelWalk ? this.opened(parts, path) : undefined) ?? this.walk(parts, path)
  }

  /** Opens the parent of `parts` (the last name is left for the caller, never followed). */
  async parent (parts: readonly string[], path: string): Promise<Place> {
    return this.directory(parts.slice(0, -1), path)
  }

  /**
   * The kernel's own walk beneath the root, in one call on this thread
   * (openat2 with RESOLVE_BENEATH: the same rules as walk() below, kept by
   * the kernel); undefined where it is not to be had.
   */
  private opened (parts: readonly string[], path: string): Place | undefined {
    let fd: number | undefined
    try {
      fd = openBeneath(this.root, parts.join('/'))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EXDEV') throw outside(path)
      throw err
    }
    if (fd === undefined) return undefined
    const dir = `/proc/self/fd/${fd}`
    const held = fd
    let open = true
    return { dir, at: (name) => `${dir}/${name}`, close: async () => { if (open) { open = false; closeSync(held) } } }
  }

  /**
   * Walks from the root one name at a time, each opened relative to the last
   * without following a link. A link is read and its target's names walked in
   * its place: a ".." steps back to the folder walked before (walked again
   * from the root, as every name so far is a real folder), and an absolute
   * target or one more ".." than there are folders leads out (EACCES). Only
   * two descriptors are open at a time.
   */
  private async walk (parts: readonly string[], path: string): Promise<Place> {
    const walked: string[] = []
    const queue = [...parts]
    let links = 0
    let here = await open(this.root, O_PATH | O_DIRECTORY)
    try {
      while (queue.length > 0) {
        const name = queue.shift()!
        if (name === '..') {
          if (walked.length === 0) throw outside(path)
          walked.pop()
          await here.close()
          here = await this.reopen(walked)
          continue
        }
        const next = await this.step(here, name)
        if (next) {
          await here.close()
          here = next
          walked.push(name)
          continue
        }
        if (++links > MAX_LINKS) throw new HerdsError('ELOOP', `too many symbolic links in ${path}`)
        const target = await readlink(`/proc/self/fd/${here.fd}/${name}`)
        if (target.startsWith('/')) throw outside(path)
        queue.unshift(...target.split('/').filter((part) => part !== '' && part !== '.'))
      }
    } catch (err) {
      await here.close()
      throw err
    }
    const dir = `/proc/self/fd/${here.fd}`
    const held = here
    return { dir, at: (name) => `${dir}/${name}`, close: () => held.close() }
  }

  /** Opens the folder `name` in `here`, never through a link; undefined if it is a link. */
  private async step (here: FileHandle, name: string): Promise<FileHandle | undefined> {
    try {
      return await open(`/proc/self/fd/${here.fd}/${name}`, O_PATH | O_DIRECTORY | O_NOFOLLOW)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw err
      if ((await lstat(`/proc/self/fd/${here.fd}/${name}`)).isSymbolicLink()) return undefined
      throw err // a file where a folder was asked for
    }
  }

  /** Opens the folders `names` from the root again (each a real folder when it was walked). */
  private async reopen (names: readonly string[]): Promise<FileHandle> {
    let here = await open(this.root, O_PATH | O_DIRECTORY)
    for (const name of names) {
      const next = await this.step(here, name).catch(async (err: unknown) => { await here.close(); throw err })
      await here.close()
      if (!next) throw new HerdsError('EACCES', `a folder on the way became a symbolic link meanwhile: ${name}`)
      here = next
    }
    return here
  }

  /** The fallback: the directory's real path, checked to lie inside the root. */
  private async checked (parts: readonly string[], path: string): Promise<Place> {
    const real = await realpath(join(this.root, ...parts))
    if (!(await this.contains(real))) throw outside(path)
    return { dir: real, at: (name) => join(real, name), close: async () => {} }
  }

  /** Is this real path inside the root? (The fallback's check.) */
  private async contains (real: string): Promise<boolean> {
    this.realRoot ||= await realpath(this.root)
    return real === this.realRoot || real.startsWith(this.realRoot.endsWith(sep) ? this.realRoot : this.realRoot + sep)
  }
}

function outside (path: string): HerdsError {
  return new HerdsError('EACCES', `${path} leads outside its tree through a symbolic link`)
}
