/**
 * Resource limits of sandbox jobs: what a sandbox's config.json may set, the
 * words that put a job under them (entering its cgroup, or setting rlimits
 * where the node has no cgroups), what status.json says enforces each, and in
 * words why a job was ended for one.
 */
import { execFileSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import os from 'node:os'
import { z } from 'zod'
import { HerdsError } from '../tree/errno.js'
import { JobCgroup, type CgroupSetup, type Controller, type Counters } from './cgroups.js'

const MiB = 1024 * 1024

/** Half the node's memory, in MiB: the default memory limit of a job. */
export const DEFAULT_MEMORY_MIB = Math.max(64, Math.floor(os.totalmem() / 2 / MiB))

/** A sandbox's limits, each job's own; 0 is no limit. */
export const LimitsSchema = z.object({
  /** Processes and threads a job may have at once (its whole tree). */
  processes: z.number().int().min(0).max(4_194_304).default(1024),
  /** MiB of memory a job may use (its whole tree). */
  memoryMiB: z.number().int().min(0).max(1024 * 1024 * 1024).default(DEFAULT_MEMORY_MIB),
  /** A job's share of busy CPUs against other work, as cgroup v2's cpu.weight: 100 is an equal share, 50 half of one, 1 to 10000. */
  cpuWeight: z.number().int().min(1).max(10_000).default(100),
}).strict()
export type Limits = z.infer<typeof LimitsSchema>

/**
 * Runs before the fence: "cgroup=<file>" writes the shell's pid to a
 * cgroup.procs, "data=<KiB>" and "nproc=<n>" set rlimits (dash calls RLIMIT_NPROC
 * -p, others -u), "nice=<n>" lowers the priority; then the rest after "--" runs.
 * A limit that cannot be set refuses the job (exit 125), never runs it unlimited.
 */
export const LIMITS_SCRIPT = [
  'n=0',
  'while [ "$#" -gt 0 ] && [ "$1" != -- ]; do',
  '  case "$1" in',
  '    cgroup=*) echo $$ > "${1#cgroup=}" || { echo "herds: could not enter the job\'s cgroup" >&2; exit 125; } ;;',
  '    data=*) ulimit -d "${1#data=}" || exit 125 ;;',
  '    nproc=*) { ulimit -u "${1#nproc=}" 2>/dev/null || ulimit -p "${1#nproc=}"; } || exit 125 ;;',
  '    nice=*) n="${1#nice=}" ;;',
  '  esac',
  '  shift',
  'done',
  'shift',
  '[ "$n" = 0 ] || exec nice -n "$n" "$@"',
  'exec "$@"',
].join('\n')

/** What status.json says of limits. */
export interface LimitsReport extends Limits {
  /** What enforces each, in words. */
  enforcedBy: { processes: string, memory: string, cpu: string }
  /** Why one is enforced less well than by a cgroup. */
  notes: string[]
}

/** A job under its limits: the words before its fence, and its cgroup if it has one. */
export interface LimitedJob {
  words: string[]
  cgroup?: JobCgroup
}

/** The nice value that gives about `weight`/100 of an equal share (each step is ×1.25 in Linux's scheduler); only lower priorities. */
export function niceFor (weight: number): number {
  if (weight >= 100) return 0
  return Math.min(19, Math.round(Math.log(100 / weight) / Math.log(1.25)))
}

export class Limiter {
  private readonly setup: CgroupSetup
  private readonly uid: number
  private readonly platform: NodeJS.Platform

  constructor (setup: CgroupSetup, uid = process.getuid?.() ?? -1, platform: NodeJS.Platform = process.platform) {
    this.setup = setup
    this.uid = uid
    this.platform = platform
  }

  /** The hierarchy of a controller, if the node may use one. */
  private where (controller: Controller): CgroupSetup['hierarchies'][number] | undefined {
    return this.setup.hierarchies.find((h) => h.controllers.includes(controller))
  }

  /** Makes job `name`'s cgroup (where there are cgroups) and the words that put it under `limits`. */
  prepare (name: string, limits: Limits): LimitedJob {
    const args: string[] = []
    let cgroup: JobCgroup | undefined
    if (this.setup.hierarchies.length) {
      try {
        cgroup = JobCgroup.make(this.setup, name, { processes: limits.processes, memoryBytes: limits.memoryMiB * MiB, cpuWeight: limits.cpuWeight })
      } catch (err) {
        throw new HerdsError('EIO', `the job's cgroup could not be made, so it was not started: ${(err as Error).message}`)
      }
      args.push(...cgroup.procsFiles().map((file) => `cgroup=${file}`))
    }
    if (!this.where('memory') && limits.memoryMiB > 0) args.push(`data=${limits.memoryMiB * 1024}`)
    if (!this.where('pids') && limits.processes > 0 && this.uid !== 0) args.push(`nproc=${threadsOf(this.uid, this.platform) + limits.processes}`)
    if (!this.where('cpu') && niceFor(limits.cpuWeight) > 0) args.push(`nice=${niceFor(limits.cpuWeight)}`)
    if (args.length === 0) return { words: [] }
    return { words: ['/bin/sh', '-c', LIMITS_SCRIPT, 'herds-limits', ...args, '--'], cgroup }
  }

  /** status.json's account of `limits` on this node. */
  report (limits: Limits): LimitsReport {
    const by = (controller: Controller, file: Record<1 | 2, string>): string | undefined => {
      const h = this.where(controller)
      return h && `cgroup v${h.version} (${file[h.version]})`
    }
    const notes = [...this.setup.notes]
    let processes = by('pids', { 1: 'pids.max', 2: 'pids.max' })
    if (!processes && this.uid === 0) {
      processes = 'none: root is exempt from RLIMIT_NPROC and the node has no pids cgroup'
    } else if (!processes) {
      processes = 'RLIMIT_NPROC (set to the processes the node\'s user had when the job started, plus the limit)'
      notes.push('without a pids cgroup, the process limit counts all the processes of the node\'s user')
    }
    let memory = by('memory', { 1: 'memory.limit_in_bytes', 2: 'memory.max' })
    if (!memory) {
      memory = 'RLIMIT_DATA (each process of the job, not their sum)'
      notes.push('without a memory cgroup, a job past its memory limit sees an allocation fail; the node cannot tell, and does not end it')
    }
    const cpu = by('cpu', { 1: 'cpu.shares', 2: 'cpu.weight' }) ?? 'nice (only ever lowering the priority)'
    const none = 'no limit (0)'
    return {
      ...limits,
      enforcedBy: { processes: limits.processes ? processes : none, memory: limits.memoryMiB ? memory : none, cpu },
      notes: [...new Set(notes)],
    }
  }
}

/** In words, why the kernel's counts say a job was past a limit; undefined when it was not. */
export function pastLimits (counters: Counters, limits: Limits): string | undefined {
  const reasons: string[] = []
  if (counters.oomKills > 0) reasons.push(`its memory limit (${limits.memoryMiB} MiB): the kernel killed ${counters.oomKills === 1 ? 'a process' : `${counters.oomKills} processes`} for memory`)
  if (counters.forksRefused > 0) reasons.push(`its process limit (${limits.processes}): ${counters.forksRefused} fork${counters.forksRefused === 1 ? ' was' : 's were'} refused`)
  return reasons.length ? `past ${reasons.join('; and past ')}` : undefined
}

/** How many threads (Linux) or processes (macOS) the user has: what RLIMIT_NPROC counts. */
function threadsOf (uid: number, platform: NodeJS.Platform): number {
  if (platform === 'darwin') {
    try { return execFileSync('ps', ['-U', String(uid), '-o', 'pid='], { encoding: 'utf8' }).split('\n').filter(Boolean).length } catch { return 0 }
  }
  let count = 0
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (statSync(`/proc/${entry}`).uid === uid) count += readdirSync(`/proc/${entry}/task`).length
    } catch { /* ended meanwhile */ }
  }
  return count
}

interface Watched {
  cgroup: JobCgroup
  limits: Limits
  /** Ends the job (its process group). */
  end: () => void
  /** The job's state now; undefined once it is gone. */
  state: () => string | undefined
  since: number
  ending: boolean
}

/** A job still idle this long after its cgroup was made never started (its start failed): its cgroup goes. */
const NEVER_STARTED_MS = 10_000

/**
 * Watches the cgroups of running jobs: a job past a limit (a fork refused at
 * its process limit, a process killed for memory) is ended, the whole cgroup
 * at once; at its end, says why, and removes its cgroup.
 */
export class LimitWatch {
  private readonly jobs = new Map<string, Watched>()
  /** Cgroups whose processes outlived their job; removed once empty. */
  private readonly lingering = new Set<JobCgroup>()
  private timer: NodeJS.Timeout | undefined

  /** Watches job `key` in `cgroup`. */
  watch (key: string, cgroup: JobCgroup, limits: Limits, job: Pick<Watched, 'end' | 'state'>): void {
    this.jobs.get(key)?.cgroup.remove()
    this.jobs.set(key, { cgroup, limits, ...job, since: Date.now(), ending: false })
    // A poll of two small files per running job; a fifth of a second is soon enough to end a fork bomb held at its limit.
    this.timer ??= setInterval(() => this.check(), 200)
    this.timer.unref()
  }

  private check (): void {
    for (const [key, watched] of this.jobs) {
      const state = watched.state()
      if (state === undefined || (state === 'idle' && Date.now() - watched.since > NEVER_STARTED_MS)) { this.ended(key); continue }
      if (watched.ending || !pastLimits(watched.cgroup.counters(), watched.limits)) continue
      watched.ending = true
      watched.end()
      watched.cgroup.kill()
    }
    for (const cgroup of this.lingering) if (cgroup.remove()) this.lingering.delete(cgroup)
    if (this.jobs.size === 0 && this.lingering.size === 0) this.stopTimer()
  }

  /** Job `key` ended: why, if it was past a limit; what is left in its cgroup is ended, the cgroup removed. */
  ended (key: string): string | undefined {
    const watched = this.jobs.get(key)
    if (!watched) return undefined
    this.jobs.delete(key)
    const past = pastLimits(watched.cgroup.counters(), watched.limits)
    watched.cgroup.kill()
    if (!watched.cgroup.remove()) this.lingering.add(watched.cgroup)
    return past && `${watched.ending ? 'ended by the node: ' : ''}${past} (raise "limits" in config.json)`
  }

  /** Ends what is left in every cgroup (the node is stopping); those that cannot go yet are left for the next start's sweep. */
  close (): void {
    this.stopTimer()
    for (const { cgroup } of this.jobs.values()) { cgroup.kill(); cgroup.remove() }
    for (const cgroup of this.lingering) { cgroup.kill(); cgroup.remove() }
    this.jobs.clear()
    this.lingering.clear()
  }

  private stopTimer (): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }
}
