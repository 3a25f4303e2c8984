/**
 * Images are recipes resolved on the node (DESIGN §5): `node:<v>` and
 * `python:<v>` pin a toolchain through mise where it is installed,
 * `xcode:<v>` selects DEVELOPER_DIR on macOS. Where the toolchain is missing
 * the job still runs, and its stderr says what would have been pinned.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { z } from 'zod'

export const ImageSchema = z.string().regex(/^(node|python|xcode):[0-9A-Za-z._-]{1,32}$/, 'an image is node:<version>, python:<version> or xcode:<version>')

/** Is a command on the PATH? */
function onPath (command: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir && existsSync(join(dir, command)))
}

export interface ImagePlan {
  /** Words put before the shell: mise exec …, or a note to stderr then the shell. */
  prefix: string[]
  env: Record<string, string>
}

/** How a job runs under an image on this machine. */
export function planImage (image: string | null, platform: NodeJS.Platform = process.platform): ImagePlan {
  if (!image) return { prefix: [], env: {} }
  const [kind, version] = image.split(':')
  const note = (why: string): ImagePlan => ({
    // A note on the job's stderr, then the job itself: "$0" "$@" is the shell and its command.
    prefix: ['/bin/sh', '-c', `echo "herds: image ${image} would be pinned ${why}; running with what this machine has" >&2; exec "$0" "$@"`],
    env: {},
  })
  if (kind === 'xcode') {
    if (platform !== 'darwin') return note('with Xcode, which exists only on macOS')
    const dir = `/Applications/Xcode_${version}.app/Contents/Developer`
    return existsSync(dir) ? { prefix: [], env: { DEVELOPER_DIR: dir } } : note(`with ${dir}, which is not installed`)
  }
  if (onPath('mise')) return { prefix: ['mise', 'exec', `${kind}@${version}`, '--'], env: {} }
  return note('through mise, which is not installed')
}

/** What this node has, for info.json: its toolchains by the names images use. */
export function nodeImages (): string[] {
  const images = [`node:${process.versions.node}`]
  try {
    const python = execFileSync('python3', ['--version'], { encoding: 'utf8', timeout: 2000 }).trim().split(' ')[1]
    if (python) images.push(`python:${python}`)
  } catch { /* no python3 */ }
  if (process.platform === 'darwin' && existsSync('/Applications')) {
    for (const app of readdirSync('/Applications')) {
      const match = app.match(/^Xcode(?:[_-]([0-9.]+))?\.app$/)
      if (match) images.push(`xcode:${match[1] ?? 'default'}`)
    }
  }
  if (onPath('mise')) images.push('mise')
  return images
}
