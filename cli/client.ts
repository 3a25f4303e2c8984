/**
 * The everyday commands: run, ls, cat, status, jobs, token, sandbox, volume.
 * Each is a few SDK calls over Herds.connect, so each is also a few file
 * operations a shell could do on a mount.
 */
import type { Command } from 'commander'
import { z } from 'zod'
import { Herds, type HerdsNode, type Job } from '../mount/sdk/index.js'
import { HerdsError, toHerdsError } from '../tree/errno.js'
import { parseJsonAs } from '../tree/json.js'
import { SafeName } from '../tree/wire.js'
import { accessFrom, CA_OPTION, HOST_OPTION, hostFrom, TOKEN_OPTION, type AccessFlags } from './access.js'
import { runChecks, printChecks } from './doctor.js'
import { install, uninstall } from './install.js'
import { defaultMountpoint, herdsHome, readAdminToken, parseFlag } from './options.js'
import { attachTerminal, localTty } from './shell.js'
import { printTable } from './table.js'

interface ClientFlags extends AccessFlags { host?: string, json?: boolean }

/** Connects with the command's flags, runs `work`, and closes. */
async function withHerds<T> (opts: ClientFlags, work: (herds: Herds) => Promise<T>): Promise<T> {
  const herds = await Herds.connect({ url: hostFrom(opts.host), ...await accessFrom(opts) })
  try {
    return await work(herds)
  } finally {
    herds.close()
  }
}

/** The node a command names with --node, else the host's default node. */
async function nodeOf (herds: Herds, flag: string | undefined): Promise<HerdsNode> {
  if (flag !== undefined) return herds.node(parseFlag(SafeName, flag, '--node'))
  const name = (await herds.health()).defaultNode
  if (typeof name !== 'string') throw new HerdsError('EHOSTDOWN', 'no node has connected to the host yet (or name one with --node)')
  return herds.node(name)
}

/** Adds the flags every client command shares. */
function client (command: Command): Command {
  return command.option(...HOST_OPTION).option(...TOKEN_OPTION).option(...CA_OPTION)
}

/** A command line from argv words: one word is a shell line as it is; several are quoted, word by word. */
export function commandLine (words: string[]): string {
  if (words.length === 1) return words[0]
  return words.map((w) => /^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`).join(' ')
}

/** --env, repeatable. */
const ENV_OPTION = ['--env <KEY=VALUE>', 'add to the job\'s environment; repeatable', (v: string, all: string[]) => [...all, v], [] as string[]] as const

/** The --env flags as an environment. */
function envFlags (pairs: string[]): Record<string, string> {
  return Object.fromEntries(pairs.map((pair) => {
    parseFlag(EnvPair, pair, '--env')
    const at = pair.indexOf('=')
    return [pair.slice(0, at), pair.slice(at + 1)]
  }))
}

const Seconds = z.string().regex(/^\d+(\.\d+)?$/, 'seconds, a number').transform(Number)
const EnvPair = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*=/, 'KEY=VALUE')

export function registerClientCommands (program: Command): void {
  client(program.command('run')
    .description('run a command on a node (the default node unless --node) and exit with its exit code')
    .argument('<cmd...>', 'the command; one word is a shell line (\'ls | wc -l\'), several are quoted word by word')
    .option('--node <name>', 'the node to run on')
    .option('--sandbox <name>', 'run in this sandbox of the node')
    .option('--timeout <seconds>', 'end the job after this long')
    .option('-t, --tty', 'on a terminal, as herds shell gives one (for vim, top, a REPL)')
    .option(...ENV_OPTION))
    .passThroughOptions()
    .action(async (words: string[], opts: ClientFlags & { node?: string, sandbox?: string, timeout?: string, env: string[], tty?: boolean }) => {
      try {
        const timeout = opts.timeout === undefined ? undefined : parseFlag(Seconds, opts.timeout, '--timeout')
        const env = envFlags(opts.env)
        const sandbox = opts.sandbox === undefined ? undefined : parseFlag(SafeName, opts.sandbox, '--sandbox')
        process.exitCode = await withHerds(opts, async (herds) => {
          const node = await nodeOf(herds, opts.node)
          if (opts.tty) return attachTerminal(node, await node.shell({ cmd: commandLine(words), env, timeout, sandbox, tty: localTty() }))
          const job = await node.spawn(commandLine(words), { env, timeout, sandbox })
          return runAttached(job, timeout)
        })
      } catch (err) {
        // As ssh does: 255 is herds' own failure, so a job's exit 1 stays the job's.
        process.stderr.write(`herds: ${toHerdsError(err).message}\n`)
        process.exitCode = 255
      }
    })

  client(program.command('shell')
    .description('an interactive login shell (or CMD) on a node, on this terminal, like ssh host; it runs on if this ends')
    .argument('[cmd...]', 'a command to run on the terminal instead of the login shell (after --)')
    .option('--node <name>', 'the node (default: the host\'s default node)')
    .option('--sandbox <name>', 'in this sandbox of the node')
    .option('--attach <id>', 'take up a terminal job again (its id, as the line at the end of a dropped session says)')
    .option(...ENV_OPTION))
    .passThroughOptions()
    .action(async (words: string[], opts: ClientFlags & { node?: string, sandbox?: string, attach?: string, env: string[] }) => {
      try {
        const env = envFlags(opts.env)
        const sandbox = opts.sandbox === undefined ? undefined : parseFlag(SafeName, opts.sandbox, '--sandbox')
        const attach = opts.attach === undefined ? undefined : parseFlag(SafeName, opts.attach, '--attach')
        if (attach !== undefined && (words.length > 0 || opts.env.length > 0)) throw new HerdsError('EINVAL', '--attach takes up a job as it is: no command or --env with it')
        process.exitCode = await withHerds(opts, async (herds) => {
          const node = await nodeOf(herds, opts.node)
          if (attach === undefined) {
            const cmd = words.length > 0 ? commandLine(words) : undefined
            return attachTerminal(node, await node.shell({ cmd, env, sandbox, tty: localTty() }))
          }
          const job = node.job(attach, { sandbox })
          const status = await job.state()
          if (!status.tty) throw new HerdsError('EINVAL', `job ${attach} has no terminal: follow it with herds cat ${job.dir}/output`)
          if (status.state !== 'running') throw new HerdsError('EINVAL', `job ${attach} is not running (${String(status.state)}): its screen's bytes are in ${job.dir}/stdout`)
          return attachTerminal(node, job, { replay: true })
        })
      } catch (err) {
        process.stderr.write(`herds: ${toHerdsError(err).message}\n`)
        process.exitCode = 255
      }
    })

  client(program.command('ls')
    .description('list a folder of the namespace')
    .argument('[path]', 'a namespace path', '/')
    .option('-l, --long', 'with type, mode and size')
    .option('--json', 'as JSON'))
    .action(async (path: string, opts: ClientFlags & { long?: boolean }) => {
      await withHerds(opts, async (herds) => {
        const names = (await herds.files.list(path)).sort()
        if (!opts.long && !opts.json) return void process.stdout.write(names.map((n) => n + '\n').join(''))
        const rows = await Promise.all(names.map(async (name) => {
          const s = await herds.files.stat(`${path.replace(/\/$/, '')}/${name}`).catch(() => undefined)
          return { name, type: s ? (s.directory ? 'dir' : 'file') : '?', mode: s ? s.mode.toString(8).padStart(4, '0') : '?', size: s?.size ?? null }
        }))
        if (opts.json) return print(rows)
        printTable(rows, ['type', 'mode', 'size', 'name'])
      })
    })

  client(program.command('cat')
    .description('print a file of the namespace (live files, such as stdout, as they grow)')
    .argument('<path>', 'a namespace path, e.g. /nodes/studio/exec/stdout'))
    .action(async (path: string, opts: ClientFlags) => {
      await withHerds(opts, (herds) => herds.files.stream(path, (chunk) => { process.stdout.write(chunk) }))
    })

  client(program.command('status')
    .description('the host, its nodes and mounts, and what is running')
    .option('--json', 'as JSON'))
    .action(async (opts: ClientFlags) => {
      await withHerds(opts, async (herds) => {
        const health = await herds.health()
        const nodes = await Promise.all((await herds.nodes()).map(async (n) => {
          const status = n.online ? await herds.node(n.name).status().catch(() => undefined) : undefined
          const load = Array.isArray(status?.load) ? Number(status.load[0]).toFixed(2) : '-'
          return { name: n.name, online: n.online, os: `${n.os}/${n.arch}`, load, running: status?.runningJobs ?? '-', lastSeen: n.lastSeen }
        }))
        if (opts.json) return print({ health, nodes })
        process.stdout.write(`host ${String(health.version)}, up ${String(health.uptimeSeconds)} s, ${String(health.mounts)} mount(s), default node ${String(health.defaultNode ?? '-')}\n`)
        printTable(nodes, ['name', 'online', 'os', 'load', 'running', 'lastSeen'])
      })
    })

  client(program.command('jobs')
    .description('recent jobs across nodes, newest first')
    .option('--node <name>', 'only this node\'s')
    .option('--limit <n>', 'at most this many', '20')
    .option('--json', 'as JSON'))
    .action(async (opts: ClientFlags & { node?: string, limit: string }) => {
      const limit = parseFlag(z.string().regex(/^\d+$/, 'a whole number').transform(Number), opts.limit, '--limit')
      await withHerds(opts, async (herds) => {
        const all = JSON.parse((await herds.files.read('/.herds/catalog/jobs.json')).toString()) as Array<Record<string, unknown>>
        const jobs = all.filter((j) => opts.node === undefined || j.node === opts.node).slice(0, limit)
        if (opts.json) return print(jobs)
        printTable(jobs.map((j) => ({ ...j, exit: j.exitCode ?? j.signal ?? '-', cmd: String(j.cmd).split('\n')[0].slice(0, 60) })), ['node', 'id', 'state', 'exit', 'startedAt', 'cmd'])
      })
    })

  const token = program.command('token').description('tokens: show this machine\'s admin token, create, list, revoke')
  token.command('show')
    .description('print the admin token the host made in HERDS_HOME/host/admin.token')
    .action(async () => { process.stdout.write(await readAdminToken() + '\n') })
  client(token.command('create')
    .description('make a token and print its secret (shown once)')
    .argument('<name>', 'the token\'s name')
    .requiredOption('--scope <scope>', 'read, run, admin, or node')
    .option('--node <name>', 'for --scope node: the node name it may register as')
    .option('--expires <time>', 'an ISO 8601 time after which it is refused'))
    .action(async (name: string, opts: ClientFlags & { scope: string, node?: string, expires?: string }) => {
      await withHerds(opts, async (herds) => {
        const request = { name, scope: opts.scope, ...(opts.node ? { node: opts.node } : {}), ...(opts.expires ? { expiresAt: opts.expires } : {}) }
        await control(herds, '/.herds/control/tokens/create', request)
        process.stdout.write((await herds.files.read(`/.herds/control/tokens/${name}/secret`)).toString())
      })
    })
  client(token.command('ls').description('list tokens (never their secrets)').option('--json', 'as JSON'))
    .action(async (opts: ClientFlags) => {
      await withHerds(opts, async (herds) => {
        const names = (await herds.files.list('/.herds/control/tokens')).filter((n) => n !== 'create').sort()
        const tokens = await Promise.all(names.map(async (n) => JSON.parse((await herds.files.read(`/.herds/control/tokens/${n}/info.json`)).toString()) as Record<string, unknown>))
        if (opts.json) return print(tokens)
        printTable(tokens, ['name', 'scope', 'node', 'createdAt', 'expiresAt'])
      })
    })
  client(token.command('revoke').description('revoke a token: its connections close at once').argument('<name>'))
    .action(async (name: string, opts: ClientFlags) => {
      await withHerds(opts, (herds) => herds.files.rmdir(`/.herds/control/tokens/${name}`))
    })

  for (const kind of ['sandbox', 'volume'] as const) {
    const folder = kind === 'sandbox' ? 'sandboxes' : 'volumes'
    const group = program.command(kind).description(`${folder} of a node: create, ls, rm`)
    const create = client(group.command('create')
      .description(`make a ${kind} (through /.herds/control/${folder}/create)`)
      .argument('<name>')
      .option('--node <name>', 'the node (default: the host\'s default node)'))
    if (kind === 'sandbox') create.option('--config <json>', 'its config.json, e.g. \'{"network":false}\'')
    create.action(async (name: string, opts: ClientFlags & { node?: string, config?: string }) => {
      await withHerds(opts, async (herds) => {
        const node = await nodeOf(herds, opts.node)
        const config = opts.config === undefined ? undefined : parseJsonAs(z.unknown(), opts.config, '--config')
        await control(herds, `/.herds/control/${folder}/create`, { node: node.name, name, ...(config ? { config } : {}) })
        process.stdout.write(`${node.path}/${folder}/${name}\n`)
      })
    })
    client(group.command('ls').description(`list the ${folder} of a node`).option('--node <name>', 'the node').option('--json', 'as JSON'))
      .action(async (opts: ClientFlags & { node?: string }) => {
        await withHerds(opts, async (herds) => {
          const node = await nodeOf(herds, opts.node)
          const names = (await herds.files.list(`${node.path}/${folder}`)).sort()
          if (opts.json) return print(names)
          process.stdout.write(names.map((n) => n + '\n').join(''))
        })
      })
    client(group.command('rm').description(`remove a ${kind}${kind === 'sandbox' ? ' (its jobs end, its files go)' : ' (it must be empty)'}`).argument('<name>').option('--node <name>', 'the node'))
      .action(async (name: string, opts: ClientFlags & { node?: string }) => {
        await withHerds(opts, async (herds) => {
          const node = await nodeOf(herds, opts.node)
          await control(herds, `/.herds/control/${folder}/remove`, { node: node.name, name })
        })
      })
  }
}

/** install, uninstall, doctor: this machine's side. */
export function registerMachineCommands (program: Command, say: (line: string) => void): void {
  program.command('install')
    .description('keep a herds command running at login (systemd user unit; launchd agent on macOS)')
    .argument('[command...]', 'what to keep running: up (the default), or node/host/mount with their flags')
    .option('--no-start', 'write the service file only')
    .passThroughOptions()
    .action(async (words: string[], opts: { start: boolean }) => {
      const args = words.length > 0 ? words : ['up']
      if (!['up', 'node', 'host', 'mount'].includes(args[0])) throw new HerdsError('EINVAL', `herds install keeps up, node, host or mount running, not ${JSON.stringify(args[0])}`)
      const env: Record<string, string> = { HERDS_HOME: herdsHome() }
      if (process.env.HERDS_TOKEN) env.HERDS_TOKEN = process.env.HERDS_TOKEN
      await install(args, env, opts.start, say)
    })
  program.command('uninstall')
    .description('stop and remove what herds install set up')
    .action(() => uninstall(say))
  client(program.command('doctor')
    .description('check FUSE, the mountpoint, the host and the token, and say how to fix each problem')
    .option('--mount <dir>', 'the mountpoint to check', defaultMountpoint()))
    .action(async (opts: ClientFlags & { mount: string }) => {
      const checks = await runChecks({ mountpoint: opts.mount, url: hostFrom(opts.host), access: () => accessFrom(opts) })
      process.exitCode = printChecks(checks, (line) => process.stdout.write(line + '\n')) ? 0 : 1
    })
}

/** Writes a control file; a refusal carries the reason errors.log gives, not just the errno. */
async function control (herds: Herds, path: string, request: unknown): Promise<void> {
  try {
    await herds.files.write(path, JSON.stringify(request))
  } catch (err) {
    const error = toHerdsError(err)
    const log = await herds.files.read('/.herds/control/errors.log').catch(() => Buffer.alloc(0))
    const last = log.toString().trim().split('\n').at(-1) ?? ''
    const reason = last.includes(path) ? last.replace(/^\S+ \S+ (\[[^\]]*\] )?/, '') : ''
    throw reason ? new HerdsError(error.code, reason.replace(/^E[A-Z]+: /, '')) : error
  }
}

function print (value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}

/**
 * Runs a job attached to this terminal: its output streamed here, this
 * process's stdin forwarded to it, Ctrl-C passed on; resolves with its exit status.
 */
async function runAttached (job: Job, timeout: number | undefined): Promise<number> {
  let interrupted = 0
  const onInterrupt = (): void => {
    if (++interrupted > 1) process.exit(130)
    process.stderr.write('herds: sent SIGINT to the job (SIGKILL follows in 3 s if it goes on); Ctrl-C again to stop waiting\n')
    void job.kill('INT').catch(() => {})
  }
  process.on('SIGINT', onInterrupt)
  const forwarding = forwardStdin(job)
  for await (const { stream, data } of job.output()) {
    const out = stream === 'stdout' ? process.stdout : process.stderr
    if (!out.write(data)) await new Promise((resolve) => out.once('drain', resolve))
  }
  const result = await job.status()
  forwarding.stop()
  process.off('SIGINT', onInterrupt)
  if (result.timedOut) process.stderr.write(`herds: the job timed out after ${timeout ?? '?'} s\n`)
  return result.exitStatus
}

/** Sends this process's stdin to the job as it comes; eof when it ends. */
function forwardStdin (job: Job): { stop (): void } {
  let stopped = false
  const stdin = process.stdin
  const pump = async (): Promise<void> => {
    for await (const chunk of stdin) {
      if (stopped) return
      await job.write(chunk as Buffer)
    }
    if (!stopped) await job.end()
  }
  pump().catch((err) => {
    // A job that ended needs no more input; anything else is worth a line.
    if (!stopped && toHerdsError(err).code !== 'EPIPE') process.stderr.write(`herds: stdin: ${toHerdsError(err).message}\n`)
  })
  return { stop: () => { stopped = true; stdin.destroy() } }
}
