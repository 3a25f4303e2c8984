/**
 * Sandboxes (DESIGN §5): isolated workspaces on a node, each with its own
 * workspace/, its own run venom bound to it, a clean environment, and a write
 * fence where the OS offers one (bwrap on Linux). Kept on disk under
 * <node home>/sandboxes/<name>/; their job records live in the node's lmdb.
 */
import { mkdirSync, realpathSync } from 'node:fs'
import { lstat, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { isAbsolute, join, normalize } from 'node:path'
import { execa } from 'execa'
import type { RootDatabase } from 'lmdb'
import { z } from 'zod'
import { HerdsError } from '../tree/errno.js'
import { jsonActionFile, parseAs } from '../tree/json.js'
import { LocalTree } from '../tree/local.js'
import { jobEnv } from './env.js'
import { checkName } from '../tree/names.js'
import { actionFile, jsonFile, type SynthDir } from '../tree/synthetic.js'
import { SafeName } from '../tree/wire.js'
import { ENDED_STATES, type JobRecord, type JobStore } from '../venoms/run/record.js'
import { Runner, type RunnerOptions } from '../venoms/run/runner.js'
import { execDir } from '../venoms/run/tree.js'
import { portsDir } from '../venoms/ports/tree.js'
import { detectCgroups, removeSetup, type CgroupSetup } from './cgroups.js'
import { detectMountNamespace, fenceArgs, type Fence, type FenceSpec } from './fence.js'
import { ImageSchema, planImage } from './images.js'
import { Limiter, LimitsSchema, LimitWatch } from './limits.js'
import { fuseMounts, isHerdsMount } from './mounts.js'
import { lmdbJobStore } from './store.js'

/** What config.json holds; written by a user, so validated. */
export const SandboxConfigSchema = z.object({
  image: ImageSchema.nullable().default(null),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'), z.string().max(64 * 1024)).default({}),
  network: z.boolean().default(true),
  /** Seconds without a running job before the sandbox stops (0: never). */
  idleTimeout: z.number().min(0).max(366 * 24 * 3600).default(0),
  /** Volumes to mount: workspace/<mount> → the node's volumes/<volume> (made if missing). */
  volumes: z.record(SafeName, SafeName).default({}),
  /** Each job's processes, memory and CPU share (see docs/isolation.md). */
  limits: LimitsSchema.prefault({}),
  /** FUSE mounts (by mount point) the jobs may see; every other is hidden, and a Herds mount always is. */
  allowMounts: z.array(z.string().max(4096).refine((path) => isAbsolute(path) && normalize(path) === path, 'an absolute path, without . or .. or a trailing /')).max(64).default([]),
}).strict()
export type SandboxConfig = z.infer<typeof SandboxConfigSchema>

/** What status.json says each fence does. */
const ISOLATION: Record<Fence, string> = {
  bwrap: 'bwrap: the system is read-only, the sandbox writable, /tmp private to each job, FUSE mounts (Herds mounts among them) hidden',
  'sandbox-exec': 'sandbox-exec: writes are denied outside the sandbox and its volumes, FUSE mounts (Herds mounts among them) unreadable',
  none: 'no fence on this machine: jobs can write wherever the node can, and "network": false is not enforced (install bubblewrap for a fence)',
}

/** The folders of a sandbox its jobs may write; the rest of it (record, job output) they cannot. */
const WRITABLE = ['workspace', 'home', 'tmp', 'cache']

/** The file, in a sandbox's folder, that keeps its config and state. */
const SAVED = 'sandbox.json'
const SavedSchema = z.object({
  config: SandboxConfigSchema,
  createdAt: z.string(),
  // "running" is what versions before "started" wrote for it.
  state: z.enum(['started', 'running', 'stopped']).transform((state) => state === 'running' ? 'started' : state),
})

/** Variables a sandbox's jobs inherit from the node; everything else is left behind. */
const ENV_ALLOWLIST = ['PATH', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TERM', 'TZ', 'USER', 'LOGNAME', 'SHELL']


interface Sandbox {
  name: string
  dir: string
  /** One tree for the workspace, so handles and renames within it hold together. */
  workspace: LocalTree
  /** The volumes mounted into the workspace, by mount name. */
  mounts: Map<string, LocalTree>
  config: SandboxConfig
  runner: Runner
  /** Where its job records are kept, for adding why a job was ended to its record. */
  store: JobStore
  /** Started: jobs may run (status.json shows ready or busy). Stopped: they are refused until `start`. */
  state: 'started' | 'stopped'
  createdAt: string
  lastActivity: number
  /** Its ports/ folder, made once: it holds the connections open through it. */
  ports?: SynthDir
}

export interface SandboxOptions {
  /** <node home>/sandboxes */
  root: string
  /** <node home>/volumes */
  volumes: string
  db: RootDatabase
  shell: string
  fence: Fence
  /** Folders sandbox jobs must not read (the node's and the host's state); see FenceSpec. */
  hidden?: string[]
  /** See FenceSpec.mountNamespace; found on the machine (with bwrap) when not given. */
  mountNamespace?: string[]
  /** Where job cgroups are made; found on the machine (Linux) when not given. */
  cgroups?: CgroupSetup
  onRecord?: (sandbox: string, record: JobRecord) => void
  /** Limits of each sandbox's exec/ (RUN_DEFAULTS for those not given). */
  runLimits?: RunnerOptions['limits']
}

export class Sandboxes {
  private readonly opts: SandboxOptions
  private readonly boxes = new Map<string, Sandbox>()
  private readonly idleTimer: NodeJS.Timeout
  private readonly cgroups: CgroupSetup
  private readonly limiter: Limiter
  private readonly watch = new LimitWatch()
  private readonly mountNamespace: string[] | undefined

  constructor (opts: SandboxOptions) {
    this.opts = opts
    this.cgroups = opts.cgroups ?? (process.platform === 'linux' ? detectCgroups() : { hierarchies: [], notes: ['no cgroups on this OS'] })
    this.limiter = new Limiter(this.cgroups)
    this.mountNamespace = opts.mountNamespace ?? (opts.fence === 'bwrap' ? detectMountNamespace() : undefined)
    this.idleTimer = setInterval(() => { void this.stopIdle() }, 5_000)
    this.idleTimer.unref()
  }

  /**
   * Loads the sandboxes kept on disk. A record that no longer reads (damaged,
   * or from another version) gives that sandbox the defaults, and says so in
   * its `error` file; it never keeps the node from starting.
   */
  async load (): Promise<void> {
    await mkdir(this.opts.root, { recursive: true })
    for (const name of await readdir(this.opts.root)) {
      if (!SafeName.safeParse(name).success) continue
      let saved: z.infer<typeof SavedSchema> | undefined
      let problem: HerdsError | undefined
      try {
        saved = SavedSchema.parse(JSON.parse(await readFile(join(this.opts.root, name, SAVED), 'utf8')))
      } catch (err) {
        problem = new HerdsError('EINVAL', `${SAVED} could not be read (${(err as Error).message.split('\n')[0].slice(0, 200)}); the defaults are in force`)
      }
      const box = await this.open(name, saved?.config ?? SandboxConfigSchema.parse({}))
      if (saved) Object.assign(box, { createdAt: saved.createdAt, state: saved.state })
      if (problem) box.runner.noteError(`../${SAVED}`, problem)
    }
  }

  /** Keeps a sandbox's config and state, outside anything its jobs can write. */
  private async save (box: Sandbox): Promise<void> {
    const saved: z.input<typeof SavedSchema> = { config: box.config, createdAt: box.createdAt, state: box.state }
    await writeFile(join(box.dir, SAVED), JSON.stringify(saved, null, 2) + '\n')
  }

  /** Every sandbox job's record, for the host's index when the node (re)connects. */
  records (): Array<{ sandbox: string, record: JobRecord }> {
    return [...this.boxes.values()].flatMap((box) => box.runner.all().map((job) => ({ sandbox: box.name, record: job.record })))
  }

  names (): string[] {
    return [...this.boxes.keys()].sort()
  }

  /** Where sandboxes show volume `volume` (any volume when undefined): [sandbox, mount], for telling mounts of a change in it. */
  mountsOf (volume: string | undefined): Array<[string, string]> {
    return [...this.boxes.values()].flatMap((box) => [...box.mounts.keys()]
      .filter((mount) => volume === undefined || box.config.volumes[mount] === volume)
      .map((mount): [string, string] => [box.name, mount]))
  }

  /** Creates a sandbox; EEXIST if the name is taken, EINVAL for a bad name or config. */
  async create (name: string, config: unknown = {}): Promise<void> {
    checkName(name, 'sandbox')
    if (this.boxes.has(name)) throw new HerdsError('EEXIST', `sandbox ${name} exists already`)
    const box = await this.open(name, parseAs(SandboxConfigSchema, config, 'config.json'))
    await this.save(box)
  }

  /** Removes a sandbox: its jobs are ended (the whole process groups), its files deleted. */
  async remove (name: string): Promise<void> {
    const box = this.boxes.get(name)
    if (!box) throw new HerdsError('ENOENT', `no sandbox ${name}`)
    box.state = 'stopped'
    await box.runner.stopAll()
    // Tools leave read-only folders behind (Go's module cache): make them removable first.
    await execa('chmod', ['-R', 'u+w', box.dir], { reject: false })
    await rm(box.dir, { recursive: true, force: true })
    this.boxes.delete(name)
    await box.runner.forget()
  }

  /** Ends every job in every sandbox (the node is stopping), and removes their cgroups. */
  async stopAll (): Promise<void> {
    clearInterval(this.idleTimer)
    await Promise.all([...this.boxes.values()].map((box) => box.runner.stopAll()))
    this.watch.close()
    removeSetup(this.cgroups)
  }

  private async open (name: string, config: SandboxConfig): Promise<Sandbox> {
    const dir = join(this.opts.root, name)
    for (const sub of WRITABLE) await mkdir(join(dir, sub), { recursive: true })
    const store = lmdbJobStore(this.opts.db, `sandbox:${name}`)
    const box: Sandbox = { name, dir, workspace: new LocalTree(join(dir, 'workspace'), { linksOut: () => false }), mounts: new Map(), config, state: 'started', createdAt: new Date().toISOString(), lastActivity: Date.now(), runner: undefined as unknown as Runner, store }
    box.runner = new Runner({
      cwd: join(dir, 'workspace'),
      env: () => this.env(box),
      shell: this.opts.shell,
      wrap: (id) => this.fence(box, id),
      gate: () => {
        if (box.state === 'stopped') throw new HerdsError('EBUSY', `sandbox ${name} is stopped; start it with: echo start > ctl`)
        box.lastActivity = Date.now()
      },
      outputDir: join(dir, 'jobs'),
      store,
      limits: this.opts.runLimits,
      onRecord: (record) => {
        box.lastActivity = Date.now()
        if (ENDED_STATES.includes(record.state)) this.noteLimits(box, record)
        this.opts.onRecord?.(name, record)
      },
    })
    await box.runner.load()
    this.boxes.set(name, box)
    // A mount that cannot be made is noted, not fatal: the sandbox still opens.
    await this.mountVolumes(box).catch((err: unknown) => box.runner.noteError('../config.json', err instanceof HerdsError ? err : new HerdsError('EIO', String(err))))
    return box
  }

  /**
   * Makes the config's volumes appear at workspace/<mount>: through the mount
   * as the volume's own tree, for jobs as a bind mount (bwrap) or a link.
   */
  private async mountVolumes (box: Sandbox, previous: SandboxConfig['volumes'] = {}): Promise<void> {
    const mounts = new Map<string, LocalTree>()
    for (const [mount, volume] of Object.entries(box.config.volumes)) {
      const source = join(this.opts.volumes, volume)
      await mkdir(source, { recursive: true })
      const target = join(box.dir, 'workspace', mount)
      const existing = await lstat(target).catch(() => undefined)
      if (existing?.isSymbolicLink()) {
        await rm(target) // made by us for an earlier mapping; remade below
      }
      if (this.opts.fence === 'bwrap') {
        if (!existing?.isSymbolicLink() && existing && !existing.isDirectory()) throw new HerdsError('EEXIST', `workspace/${mount} is a file; move it before mounting a volume there`)
        await mkdir(target, { recursive: true })
      } else {
        if (!existing?.isSymbolicLink() && existing) throw new HerdsError('EEXIST', `workspace/${mount} exists; move it before mounting a volume there (without a fence, a mount is a link)`)
        await symlink(source, target)
      }
      mounts.set(mount, new LocalTree(source, { linksOut: () => false })) // its jobs write here
    }
    // Links of mounts that are gone would still lead jobs into their volumes.
    for (const mount of Object.keys(previous)) {
      if (mounts.has(mount)) continue
      const target = join(box.dir, 'workspace', mount)
      if ((await lstat(target).catch(() => undefined))?.isSymbolicLink()) await rm(target)
    }
    box.mounts = mounts
  }

  /** Checks a new config's mounts before anything is saved: a file in the way refuses the whole config. */
  private async checkMounts (box: Sandbox, config: SandboxConfig): Promise<void> {
    for (const mount of Object.keys(config.volumes)) {
      if (Object.hasOwn(box.config.volumes, mount)) continue
      const existing = await lstat(join(box.dir, 'workspace', mount)).catch(() => undefined)
      if (existing && !(this.opts.fence === 'bwrap' && existing.isDirectory())) {
        throw new HerdsError('EEXIST', `config.json: volumes.${mount}: workspace/${mount} exists already; move it first`)
      }
    }
  }

  /** A clean environment: an allowlist of the node's, home and caches inside the sandbox, then the config's. */
  private env (box: Sandbox): Record<string, string> {
    const env: Record<string, string> = {}
    const node = jobEnv() // the user's, not a launcher's (npm's PATH)
    for (const key of ENV_ALLOWLIST) if (node[key] !== undefined) env[key] = node[key]!
    const home = join(box.dir, 'home')
    const cache = join(box.dir, 'cache')
    Object.assign(env, {
      HOME: home,
      TMPDIR: join(box.dir, 'tmp'),
      XDG_CONFIG_HOME: join(home, '.config'),
      XDG_DATA_HOME: join(home, '.local', 'share'),
      XDG_STATE_HOME: join(home, '.local', 'state'),
      XDG_CACHE_HOME: cache,
      npm_config_cache: join(cache, 'npm'),
      PIP_CACHE_DIR: join(cache, 'pip'),
      CARGO_HOME: join(cache, 'cargo'),
      HERDS_SANDBOX: box.name,
    })
    for (const mount of box.mounts.keys()) {
      env[`HERDS_VOLUME_${mount.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}`] = join(box.dir, 'workspace', mount)
    }
    return { ...env, ...planImage(box.config.image).env, ...box.config.env }
  }

  /**
   * The words a job runs in: its limits (its cgroup made), then the fence (the
   * system read-only, the sandbox writable, a private /tmp, Herds' state and
   * FUSE mounts hidden), then its image.
   */
  private fence (box: Sandbox, id: string): string[] {
    const binds = [...box.mounts.keys()].map((mount): [string, string] => {
      const source = join(this.opts.volumes, box.config.volumes[mount])
      mkdirSync(source, { recursive: true }) // a volume removed since is made again, empty, rather than fail the job
      return [real(source), real(join(box.dir, 'workspace', mount))]
    })
    const fuse = this.opts.fence === 'none' ? [] : fuseMounts()
    const spec: FenceSpec = {
      // Real paths, as the mount table has them, so a mount below one of these is found.
      writable: WRITABLE.map((sub) => real(join(box.dir, sub))),
      hidden: (this.opts.hidden ?? []).map(real),
      binds,
      network: box.config.network,
      cwd: join(box.dir, 'workspace'),
      fuse,
      allowMounts: fuse.filter((mount) => !isHerdsMount(mount) && box.config.allowMounts.includes(mount.path)).map((mount) => mount.path),
      usualMounts: ['/Volumes/herds', join(homedir(), 'herds')],
      mountNamespace: this.mountNamespace,
    }
    const words = fenceArgs(this.opts.fence, spec)
    const limited = this.limiter.prepare(`${box.name}:${id}`, box.config.limits)
    if (limited.cgroup) {
      this.watch.watch(`${box.name}/${id}`, limited.cgroup, box.config.limits, {
        end: () => box.runner.get(id)?.kill('SIGKILL'),
        state: () => box.runner.get(id)?.record.state,
      })
    }
    return [...limited.words, ...words, ...planImage(box.config.image).prefix]
  }

  /** A job ended: if it was past a limit, its record says so (before anyone waiting on its end reads it). */
  private noteLimits (box: Sandbox, record: JobRecord): void {
    const reason = this.watch.ended(`${box.name}/${record.id}`)
    if (!reason) return
    record.error = record.error ? `${reason}; ${record.error}` : reason
    box.store.put(record).catch(() => { /* kept in memory; the disk is full */ })
  }

  private async stopIdle (): Promise<void> {
    const now = Date.now()
    for (const box of this.boxes.values()) {
      const busy = box.runner.all().some((job) => job.running)
      if (busy) box.lastActivity = now
      else if (box.state === 'started' && box.config.idleTimeout > 0 && now - box.lastActivity > box.config.idleTimeout * 1000) {
        box.state = 'stopped'
        await this.save(box)
      }
    }
  }

  /** sandboxes/: mkdir makes one, rmdir removes it. */
  dir (): SynthDir {
    return {
      kind: 'dir',
      mode: 0o755,
      list: () => this.names(),
      lookup: (name) => {
        const box = this.boxes.get(name)
        return box && this.sandboxDir(box)
      },
      mkdir: (name) => this.create(name),
      rmdir: (name) => this.remove(name),
      missing: (name) => `no sandbox named ${name} on this node (sandboxes: ${this.names().join(', ') || 'none'}; make one with mkdir sandboxes/${name})`,
    }
  }

  private sandboxDir (box: Sandbox): SynthDir {
    return {
      kind: 'dir',
      entries: {
        workspace: box.mounts.size === 0
          ? { kind: 'tree', tree: box.workspace }
          : { kind: 'dir', mode: 0o755, union: () => box.workspace, entries: Object.fromEntries([...box.mounts].map(([mount, tree]) => [mount, { kind: 'tree' as const, tree }])) },
        exec: execDir(box.runner),
        // Its jobs share the node's network unless the fence takes it away; then there is no way in.
        ports: box.ports ??= portsDir({ refuse: () => box.config.network || this.opts.fence === 'none' ? null : `sandbox ${box.name} has "network": false: nothing can connect to its ports` }),
        'status.json': jsonFile(() => ({
          name: box.name,
          ...activity(box),
          createdAt: box.createdAt,
          lastActivity: new Date(box.lastActivity).toISOString(),
          fence: this.opts.fence,
          network: box.config.network,
          isolation: ISOLATION[this.opts.fence] + (this.opts.fence !== 'none' && !box.config.network ? ', no network' : '') +
            (this.opts.fence === 'bwrap' && !this.mountNamespace ? ' (but a mount made while a job runs can reach it: this machine cannot give jobs a private mount namespace)' : ''),
          limits: this.limiter.report(box.config.limits),
        })),
        'config.json': jsonActionFile({
          schema: SandboxConfigSchema,
          what: 'config.json',
          read: () => JSON.stringify(box.config, null, 2) + '\n',
          commit: async (config) => {
            await this.checkMounts(box, config)
            const previous = box.config.volumes
            box.config = config
            await this.save(box)
            await this.mountVolumes(box, previous)
          },
          onRefuse: (err) => box.runner.noteError('../config.json', err),
        }),
        ctl: actionFile({
          maxBytes: 1024,
          validate: (soFar) => {
            for (const line of soFar.toString('utf8').split('\n').slice(0, -1)) parseSandboxCtl(line)
          },
          commit: async (data) => {
            for (const line of data.toString('utf8').split('\n')) {
              const verb = parseSandboxCtl(line)
              if (verb === 'stop') { box.state = 'stopped'; await box.runner.stopAll() }
              if (verb === 'start') { box.state = 'started'; box.lastActivity = Date.now() }
              if (verb) await this.save(box)
            }
          },
          onRefuse: (err) => box.runner.noteError('../ctl', err),
        }),
      },
    }
  }
}

/**
 * What status.json says of a sandbox's use: stopped; busy while a job of it
 * runs; else ready. With `running`, how many of its jobs run.
 */
function activity (box: Sandbox): { state: 'ready' | 'busy' | 'stopped', running: number } {
  const running = box.runner.all().filter((job) => job.running).length
  return { state: box.state === 'stopped' ? 'stopped' : running > 0 ? 'busy' : 'ready', running }
}

function parseSandboxCtl (line: string): 'stop' | 'start' | undefined {
  const verb = line.trim()
  if (verb === '') return undefined
  if (verb === 'stop' || verb === 'start') return verb
  throw new HerdsError('EINVAL', `a sandbox's ctl takes "stop" or "start", not ${JSON.stringify(verb.slice(0, 80))}`)
}

/** The path with links resolved, or as given where it does not exist (yet). */
function real (path: string): string {
  try { return realpathSync(path) } catch { return path }
}
