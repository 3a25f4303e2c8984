/**
 * Control groups for sandbox jobs (Linux): where this node may make them
 * (cgroup v2, else the v1 hierarchy of each controller), one per job with its
 * limits written in, what the kernel counted against them, and the end of
 * every process in one. The node makes its own folder below its own cgroup
 * and never touches anything else.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'

export type Controller = 'pids' | 'memory' | 'cpu'
const CONTROLLERS: Controller[] = ['pids', 'memory', 'cpu']

/** One hierarchy the node makes job cgroups in: its own folder there, and the controllers it uses from it. */
export interface Hierarchy {
  version: 1 | 2
  /** <the node's cgroup>/herds-<pid>-<n>, made by detectCgroups. */
  dir: string
  controllers: Controller[]
}

export interface CgroupSetup {
  hierarchies: Hierarchy[]
  /** Why a controller could not be had, in words, for status.json. */
  notes: string[]
}

/** The limits a job's cgroup is given; 0 is none. */
export interface CgroupLimits {
  processes: number
  memoryBytes: number
  cpuWeight: number
}

/** What the kernel counted against a job's limits. */
export interface Counters {
  /** Forks refused at the process limit. */
  forksRefused: number
  /** Processes killed for memory. */
  oomKills: number
}

interface CgroupMount { version: 1 | 2, mountpoint: string, root: string, controllers: string[] }

/** The cgroup file systems in a mountinfo text. */
export function parseCgroupMounts (mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = []
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ')
    const dash = fields.indexOf('-', 6)
    if (dash < 0 || dash + 3 >= fields.length) continue
    const type = fields[dash + 1]
    const decode = (raw: string): string => raw.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
    if (type === 'cgroup2') mounts.push({ version: 2, mountpoint: decode(fields[4]), root: decode(fields[3]), controllers: [] })
    if (type === 'cgroup') mounts.push({ version: 1, mountpoint: decode(fields[4]), root: decode(fields[3]), controllers: fields[dash + 3].split(',') })
  }
  return mounts
}

/** /proc/self/cgroup: "0::<path>" for v2, "<n>:<controllers>:<path>" for each v1 hierarchy. */
export function parseProcCgroup (text: string): Array<{ controllers: string[], path: string }> {
  return text.split('\n').filter(Boolean).map((line) => {
    const [, controllers, ...path] = line.split(':')
    return { controllers: controllers ? controllers.split(',') : [], path: path.join(':') }
  })
}

/** Where `path` (as /proc/self/cgroup gives it) is in a mount of its hierarchy. */
function folderOf (mount: CgroupMount, path: string): string {
  const rel = mount.root !== '/' && (path === mount.root || path.startsWith(mount.root + '/')) ? path.slice(mount.root.length) : path
  return join(mount.mountpoint, rel)
}

const read = (path: string): string => readFileSync(path, 'utf8')
/** The numbers instances of the node in this process take, so each has a folder of its own. */
let instances = 0

/**
 * Finds where this node may make job cgroups, and makes its folder there
 * (herds-<pid>-<n>, removed by removeSetup). A controller is taken from
 * cgroup v2 when the node's cgroup can hand it down (its
 * cgroup.subtree_control takes it), else from its v1 hierarchy where the node
 * may make a folder; none where neither works, with a note saying why.
 */
export function detectCgroups (proc = '/proc/self'): CgroupSetup {
  const setup: CgroupSetup = { hierarchies: [], notes: [] }
  let mounts: CgroupMount[]
  let own: Array<{ controllers: string[], path: string }>
  try {
    mounts = parseCgroupMounts(read(join(proc, 'mountinfo')))
    own = parseProcCgroup(read(join(proc, 'cgroup')))
  } catch {
    return { hierarchies: [], notes: ['no cgroups on this machine'] }
  }
  const name = `herds-${process.pid}-${++instances}`
  const wanted = new Set<Controller>(CONTROLLERS)
  const v2 = mounts.find((m) => m.version === 2)
  const v2path = own.find((entry) => entry.controllers.length === 0)?.path
  if (v2 && v2path !== undefined) {
    let parent = folderOf(v2, v2path)
    if (basename(parent) === `herds-${process.pid}-node`) parent = dirname(parent) // moved there by an earlier node of this process
    sweepLeftovers(parent)
    const got = takeV2(parent, name, [...wanted], setup.notes)
    if (got.length) {
      setup.hierarchies.push({ version: 2, dir: join(parent, name), controllers: got })
      for (const c of got) wanted.delete(c)
    }
  }
  for (const controller of [...wanted]) {
    const mount = mounts.find((m) => m.version === 1 && m.controllers.includes(controller))
    const entry = own.find((e) => e.controllers.includes(controller))
    if (!mount || !entry) continue
    const parent = folderOf(mount, entry.path)
    sweepLeftovers(parent)
    const dir = join(parent, name)
    const shared = setup.hierarchies.find((h) => h.version === 1 && h.dir === dir)
    if (shared) { shared.controllers.push(controller); wanted.delete(controller); continue }
    try {
      mkdirSync(dir)
      setup.hierarchies.push({ version: 1, dir, controllers: [controller] })
      wanted.delete(controller)
    } catch (err) {
      setup.notes.push(`cgroup v1 ${controller}: cannot make ${dir} (${(err as NodeJS.ErrnoException).code})`)
    }
  }
  for (const controller of wanted) if (!setup.notes.some((n) => n.includes(controller))) setup.notes.push(`no ${controller} controller this node may use`)
  return setup
}

/**
 * cgroup v2: makes <parent>/<name> for the controllers the node's cgroup
 * hands down (its cgroup.subtree_control), and hands them on to its children,
 * the jobs. A cgroup that holds processes cannot hand controllers down (the
 * kernel's "no internal processes" rule): when the node is the only process
 * in its cgroup (as in a delegated systemd scope), it moves itself into a
 * leaf of it, herds-<pid>-node, and hands them down; otherwise it says why not.
 */
function takeV2 (parent: string, name: string, wanted: Controller[], notes: string[]): Controller[] {
  const words = (file: string): string[] => read(join(parent, file)).trim().split(/\s+/).filter(Boolean)
  let available: string[]
  try {
    available = words('cgroup.controllers')
  } catch {
    return []
  }
  const candidates = wanted.filter((c) => available.includes(c))
  if (candidates.length === 0) return []
  let missing = candidates.filter((c) => !words('cgroup.subtree_control').includes(c))
  if (missing.length && words('cgroup.procs').join(' ') === String(process.pid)) {
    try {
      const leaf = join(parent, `herds-${process.pid}-node`)
      mkdirSync(leaf, { recursive: true })
      writeFileSync(join(leaf, 'cgroup.procs'), String(process.pid))
      for (const c of missing) writeFileSync(join(parent, 'cgroup.subtree_control'), `+${c}`)
    } catch { /* noted below */ }
    missing = candidates.filter((c) => !words('cgroup.subtree_control').includes(c))
  }
  if (missing.length) notes.push(`cgroup v2: ${parent} does not hand ${missing.join(', ')} down to the node's jobs (it holds other processes, or is not the node's to change); start the node alone in a cgroup delegated to it (systemd-run --user --scope -p Delegate=yes herds node …)`)
  const got = candidates.filter((c) => !missing.includes(c))
  if (got.length === 0) return []
  const dir = join(parent, name)
  try {
    mkdirSync(dir)
    writeFileSync(join(dir, 'cgroup.subtree_control'), got.map((c) => `+${c}`).join(' '))
  } catch (err) {
    try { rmdirSync(dir) } catch { /* not made */ }
    notes.push(`cgroup v2: cannot make ${dir} for jobs (${(err as NodeJS.ErrnoException).code})`)
    return []
  }
  return got
}

/** Removes what nodes that are gone left in `parent` (herds-<pid>-…, emptied when their processes ended). */
function sweepLeftovers (parent: string): void {
  let entries: string[]
  try { entries = readdirSync(parent) } catch { return }
  for (const entry of entries) {
    const pid = entry.match(/^herds-(\d+)-/)?.[1]
    if (!pid || isAlive(Number(pid))) continue
    const dir = join(parent, entry)
    try {
      for (const job of readdirSync(dir, { withFileTypes: true })) if (job.isDirectory()) rmdirSync(join(dir, job.name))
      rmdirSync(dir)
    } catch { /* something still runs there: left alone */ }
  }
}

function isAlive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM' }
}

/** One job's cgroup: a folder in each hierarchy of the setup. */
export class JobCgroup {
  readonly dirs: Array<{ version: 1 | 2, dir: string, controllers: Controller[] }>

  private constructor (dirs: JobCgroup['dirs']) {
    this.dirs = dirs
  }

  /** Makes the cgroup `name` with its limits; throws (the job is refused) if the kernel will not. */
  static make (setup: CgroupSetup, name: string, limits: CgroupLimits): JobCgroup {
    const cgroup = new JobCgroup(setup.hierarchies.map((h) => ({ version: h.version, dir: join(h.dir, name), controllers: h.controllers })))
    try {
      for (const { version, dir, controllers } of cgroup.dirs) {
        if (existsSync(dir)) clearOut(dir) // left by an earlier job of the same name (a sandbox made again): counters start at 0
        mkdirSync(dir)
        for (const [file, value] of limitFiles(version, controllers, limits)) {
          if (existsSync(join(dir, file))) writeFileSync(join(dir, file), value)
        }
      }
    } catch (err) {
      cgroup.remove()
      throw err
    }
    return cgroup
  }

  /** The files a process writes its pid to, to enter this cgroup. */
  procsFiles (): string[] {
    return this.dirs.map(({ dir }) => join(dir, 'cgroup.procs'))
  }

  /** What the kernel counted against the limits so far. */
  counters (): Counters {
    const counters: Counters = { forksRefused: 0, oomKills: 0 }
    for (const { version, dir, controllers } of this.dirs) {
      if (controllers.includes('pids')) counters.forksRefused += field(join(dir, 'pids.events'), 'max')
      if (controllers.includes('memory')) counters.oomKills += field(join(dir, version === 2 ? 'memory.events' : 'memory.oom_control'), 'oom_kill')
    }
    return counters
  }

  /** The processes in it now. */
  pids (): number[] {
    const pids = new Set<number>()
    for (const file of this.procsFiles()) {
      try {
        for (const line of read(file).split('\n')) if (line) pids.add(Number(line))
      } catch { /* gone */ }
    }
    return [...pids]
  }

  /** Ends every process in it, those that left the job's process group too. */
  kill (): void {
    for (const { version, dir } of this.dirs) {
      if (version === 2 && existsSync(join(dir, 'cgroup.kill'))) {
        try { writeFileSync(join(dir, 'cgroup.kill'), '1') } catch { /* gone */ }
      }
    }
    // Without cgroup.kill, one by one; a process forking meanwhile is bounded by pids.max, so a few rounds do.
    for (let round = 0; round < 20; round++) {
      const pids = this.pids()
      if (pids.length === 0) return
      for (const pid of pids) {
        try { process.kill(pid, 'SIGKILL') } catch { /* gone */ }
      }
    }
  }

  /** Removes its folders; false while processes remain in it. */
  remove (): boolean {
    let all = true
    for (const { dir } of this.dirs) {
      try { rmdirSync(dir) } catch (err) { if ((err as NodeJS.ErrnoException).code !== 'ENOENT') all = false }
    }
    return all
  }
}

/** Removes a job cgroup left behind, ending what still runs in it first. */
function clearOut (dir: string): void {
  for (let round = 0; round < 20; round++) {
    try { rmdirSync(dir); return } catch { /* still has processes */ }
    for (const line of read(join(dir, 'cgroup.procs')).split('\n')) {
      if (line) try { process.kill(Number(line), 'SIGKILL') } catch { /* gone */ }
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10) // a moment for them to be reaped
  }
  rmdirSync(dir) // still there: the job is refused, saying so
}

/** The files that set `limits` in a cgroup of `version`, in the order they must be written. */
export function limitFiles (version: 1 | 2, controllers: Controller[], limits: CgroupLimits): Array<[string, string]> {
  const files: Array<[string, string]> = []
  if (controllers.includes('pids')) files.push(['pids.max', limits.processes > 0 ? String(limits.processes) : 'max'])
  if (controllers.includes('memory')) {
    const bytes = limits.memoryBytes > 0 ? String(limits.memoryBytes) : version === 2 ? 'max' : '-1'
    if (version === 2) {
      // Memory means memory: no swapping past it; past it the whole job is killed, not one process of it.
      files.push(['memory.max', bytes], ['memory.swap.max', limits.memoryBytes > 0 ? '0' : 'max'], ['memory.oom.group', '1'])
    } else {
      files.push(['memory.limit_in_bytes', bytes], ['memory.memsw.limit_in_bytes', bytes])
    }
  }
  if (controllers.includes('cpu')) {
    files.push(version === 2 ? ['cpu.weight', String(limits.cpuWeight)] : ['cpu.shares', String(cpuShares(limits.cpuWeight))])
  }
  return files
}

/** cgroup v1's cpu.shares for a v2 cpu.weight (100 ↔ 1024, the defaults). */
export function cpuShares (weight: number): number {
  return Math.min(262_144, Math.max(2, Math.round(weight * 1024 / 100)))
}

/** A "key value" line of a cgroup file, as a number (0 when absent). */
function field (file: string, key: string): number {
  try {
    const line = read(file).split('\n').find((l) => l.startsWith(key + ' '))
    return line ? Number(line.slice(key.length + 1)) || 0 : 0
  } catch {
    return 0
  }
}

/** Removes the node's folders (and the empty job cgroups left in them) once its jobs have ended. */
export function removeSetup (setup: CgroupSetup): void {
  for (const { dir } of setup.hierarchies) {
    try {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        if (entry.isDirectory()) try { rmdirSync(join(dir, entry.name)) } catch { /* still has processes */ }
      }
      rmdirSync(dir)
    } catch { /* gone, or a job's processes outlived it */ }
  }
}
