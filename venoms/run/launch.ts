/**
 * How a job's process is started so that it inherits nothing but stdin,
 * stdout and stderr. Node opens its own files close-on-exec, but native code
 * in the node (lmdb's databases, the FUSE binding's /dev/fuse) does not; a job
 * that inherited those could rewrite the host's tokens or answer FUSE requests,
 * from inside a fence too. So every job starts through venoms/run/close-fds, which
 * closes every descriptor above 2 and then runs the job (bwrap included, so it
 * passes nothing on). Where that helper was not built, each descriptor the node
 * has open is instead replaced in the child by /dev/null.
 */
import { accessSync, constants, openSync, readdirSync, statSync } from 'node:fs'
import { delimiter, isAbsolute, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { HerdsError } from '../../tree/errno.js'

/** The standard streams a job gets: three pipes, then /dev/null or nothing for each higher number. */
export type JobStdio = Array<'pipe' | 'ignore' | number>

export interface Launch {
  file: string
  args: string[]
  stdio: JobStdio
}

/** Where .ci/setup builds the helper: from venoms/run/ (sources) or dist/venoms/run/ (built). */
const HELPER_PLACES = ['./build/close-fds', '../../../venoms/run/build/close-fds']

let helper: string | null | undefined
let devNull: number | undefined

/** The built close-fds helper, or null when it is missing (then jobs get /dev/null in place of the node's descriptors). */
export function closeFdsHelper (): string | null {
  if (helper === undefined) {
    helper = HELPER_PLACES.map((place) => fileURLToPath(new URL(place, import.meta.url))).find(isExecutable) ?? null
  }
  return helper
}

/**
 * The process to start for `argv`: its program found on `path` first (so a
 * missing shell or bwrap is a failed start, as it would be without the helper),
 * then run through the helper.
 */
export function planLaunch (argv: string[], path: string | undefined, close = closeFdsHelper()): Launch {
  const [name, ...rest] = argv
  const program = findProgram(name, path)
  if (close) return { file: close, args: [program, ...rest], stdio: ['pipe', 'pipe', 'pipe'] }
  return { file: program, args: rest, stdio: ['pipe', 'pipe', 'pipe', ...coverOpenDescriptors()] }
}

/** Finds a program as execvp(3) would: a path as it is, a bare name on PATH. */
export function findProgram (name: string, path: string | undefined): string {
  if (name.includes('/')) {
    if (isExecutable(name)) return name
  } else {
    for (const dir of (path ?? '/usr/bin:/bin').split(delimiter)) {
      const candidate = join(dir || '.', name)
      if (isExecutable(candidate)) return isAbsolute(candidate) ? candidate : join(process.cwd(), candidate)
    }
  }
  throw new HerdsError('ENOENT', `cannot run ${name}: no such program${name.includes('/') ? '' : ' on the PATH'}`)
}

/** stdio entries 3 and up: /dev/null over every descriptor open in the node now, nothing elsewhere. */
function coverOpenDescriptors (): Array<'ignore' | number> {
  devNull ??= openSync('/dev/null', 'r+') // Node's own: close-on-exec, kept for every job
  const open = listOpenDescriptors()
  const entries: Array<'ignore' | number> = []
  for (let fd = 3; fd <= Math.max(2, ...open); fd++) entries.push(open.includes(fd) ? devNull : 'ignore')
  return entries
}

/** The node's open descriptors above 2, from the kernel's list (Linux /proc, macOS /dev/fd). */
function listOpenDescriptors (): number[] {
  for (const dir of ['/proc/self/fd', '/dev/fd']) {
    try {
      return readdirSync(dir).map(Number).filter((fd) => Number.isInteger(fd) && fd > 2)
    } catch { /* not on this system */ }
  }
  throw new HerdsError('ENOSYS', 'cannot list the node\'s open files (no /proc/self/fd or /dev/fd), so a job would inherit them: build venoms/run/close-fds with npm run setup')
}

function isExecutable (file: string): boolean {
  try {
    accessSync(file, constants.X_OK)
    return statSync(file).isFile()
  } catch {
    return false
  }
}

/**
 * Variables that the dynamic loader, the C library or a shell acts on at a
 * program's start, and PATH, which finds the programs. Before the fence is up
 * the programs that build it (unshare, sh, bwrap) run outside it: a job's
 * LD_PRELOAD, or a PATH that finds a workspace's own `bwrap`, would run the
 * job's code there. So they are held back and set only at the fence's last
 * step, by /usr/bin/env inside it.
 */
const ACTS_AT_START = /^(LD_|DYLD_)|^(PATH|GCONV_PATH|GETCONF_DIR|HOSTALIASES|LOCALDOMAIN|LOCPATH|MALLOC_TRACE|NIS_PATH|NLSPATH|RESOLV_HOST_CONF|RES_OPTIONS|TZDIR|ENV|BASH_ENV|SHELLOPTS|BASHOPTS|PS4|IFS)$/

/**
 * The command line and environment of a job run inside `wrap` (a fence): the
 * fence's programs get the job's environment without ACTS_AT_START and with
 * the node's own PATH; those variables reach the job's shell through env.
 */
export function fencedCommand (wrap: string[], shell: string, cmd: string, env: Record<string, string>, nodePath: string | undefined): { argv: string[], env: Record<string, string> } {
  const outer: Record<string, string> = {}
  const inner: string[] = []
  for (const [key, value] of Object.entries(env)) {
    if (ACTS_AT_START.test(key)) inner.push(`${key}=${value}`)
    else outer[key] = value
  }
  if (nodePath !== undefined) outer.PATH = nodePath
  return { argv: [...wrap, '/usr/bin/env', ...inner, shell, '-c', cmd], env: outer }
}
