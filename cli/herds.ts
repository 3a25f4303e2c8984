#!/usr/bin/env node
/** The herds command: run the host, a node, a mount, or all three (`herds up`). */
import { resolve, join } from 'node:path'
import { Command } from 'commander'
import { startHost, type HostOptions, type RunningHost } from '../host/server.js'
import { connectHost, type HostConnection } from '../mount/client.js'
import { checkFuseDevice, loadFuseLayer, mountTree, prepareMountpoint, type Mounted } from '../mount/fuse.js'
import { checkAllowOther } from '../mount/sharing.js'
import { defaultNodeName } from '../nodes/info.js'
import { startNode, type Export, type RunningNode } from '../nodes/node.js'
import { RUN_DEFAULTS } from '../venoms/run/runner.js'
import type { Dialer } from '../tree/dial.js'
import { HerdsError, toHerdsError } from '../tree/errno.js'
import { VERSION } from '../tree/version.js'
import { accessFrom, CA_OPTION, TOKEN_OPTION, type Access, type AccessFlags } from './access.js'
import { writeHostUrl } from './hostfile.js'
import { registerClientCommands, registerMachineCommands } from './client.js'
import { registerForwardCommand } from './forward.js'
import { registerMcpCommand } from './mcp.js'
import { collectExports, DEFAULT_PORT, defaultMountpoint, Dir, herdsHome, HostUrl, JobExpiry, ListenAddress, NodeName, parseFlag, Port, readFlagFile } from './options.js'

const say = (line: string): void => { process.stdout.write(`herds: ${line}\n`) }
// A closed terminal or pipe must not crash a running host, node or mount.
process.stdout.on('error', () => {})
process.stderr.on('error', () => {})

/** Things to stop on the way out, last started first. */
const stoppers: Array<() => Promise<void> | void> = []
let stopping: Promise<never> | undefined

/** Stops everything once (unmount, end jobs, close the host), then exits. */
function stopAll (code: number): Promise<never> {
  stopping ??= (async () => {
    for (const stop of stoppers.reverse()) await Promise.resolve().then(stop).catch(() => {})
    process.exit(code)
  })()
  return stopping
}

function exitOnSignals (): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (stopping) return say('still stopping: unmounting and ending jobs')
      say(`stopping (${signal})`)
      void stopAll(0)
    })
  }
}

/** A refused or revoked token ends the process: retrying would not help. */
function stopOnFatal (dialer: Dialer, what: string): void {
  dialer.on('fatal', (err: HerdsError) => {
    process.stderr.write(`herds: ${what}: ${err.message}\n`)
    void stopAll(1)
  })
}

async function runHost (opts: HostFlags): Promise<RunningHost> {
  const host = await startHost({ ...hostOptions(opts), home: join(herdsHome(), 'host'), log: say })
  stoppers.push(() => host.stop())
  // Local clients (herds run, status, doctor) find it here on whatever port it got.
  stoppers.push(writeHostUrl(loopbackUrl(host.url)))
  say(`host   ${host.url}`)
  return host
}

async function runNode (url: string, name: string, exports: Export[], access: Access, jobExpiry: string): Promise<RunningNode> {
  const jobExpiryMs = parseFlag(JobExpiry, jobExpiry, '--job-expiry') * 1000
  const node = await startNode({ host: url, name, home: join(herdsHome(), 'nodes', name), hidden: [herdsHome()], exports, jobExpiryMs, log: say, ...access })
  stoppers.push(() => node.stop())
  stopOnFatal(node.dialer, `node ${name}`)
  node.dialer.on('disconnect', () => { if (!stopping) say('lost the host; reconnecting') })
  node.dialer.on('connect', () => say(`node   ${name} (connected)`))
  say(`node   ${name}`)
  for (const ex of exports) say(`export ${ex.name} = ${ex.path}${ex.readOnly ? ' (read-only)' : ''}`)
  return node
}

async function runMount (url: string, dir: string, access: Access, allowOther = false): Promise<Mounted> {
  const connection: HostConnection = await connectHost(url, access)
  stoppers.push(() => connection.close())
  stopOnFatal(connection.dialer, 'mount')
  // Say when the host goes and comes back, as the node does: meanwhile files answer EHOSTDOWN.
  connection.dialer.on('disconnect', () => { if (!stopping) say(`mount  lost the host at ${url}; reconnecting (files there answer "Host is down" meanwhile)`) })
  connection.dialer.on('connect', () => say(`mount  connected to the host again`))
  const cache = connection.cache
  const mounted = await mountTree(connection.tree, dir, {
    settled: (path) => cache.settled(path),
    nameSettled: (path) => cache.nameSettled(path),
    onChange: (listener) => cache.onChange(listener),
    allowOther,
  })
  stoppers.push(() => mounted.unmount())
  say(`mount  ${mounted.mountpoint} (${mounted.layer}${allowOther ? ', shared with the machine\'s other users' : ''})`)
  return mounted
}

/** The URL this machine reaches a host at: a host on every address is on loopback too. */
function loopbackUrl (url: string): string {
  return url.replace(/\/\/(0\.0\.0\.0|\[::\])/, '//127.0.0.1')
}

interface HostFlags { port: string, listen: string, tlsCert?: string, tlsKey?: string, insecure?: boolean, defaultNode?: string }

function withHostOptions (command: Command): Command {
  return command
    .option('--port <n>', 'the port (0: any free port)', String(DEFAULT_PORT))
    .option('--listen <addr>', 'the address to listen on; other than loopback needs --tls-cert/--tls-key or --insecure', '127.0.0.1')
    .option('--tls-cert <file>', 'serve wss:// with this certificate (PEM)')
    .option('--tls-key <file>', 'the certificate\'s private key (PEM)')
    .option('--insecure', 'allow plain ws:// on a non-loopback address (tokens cross the network in clear)')
}

/** Checks the host's flags; TLS needs both files. */
function hostOptions (opts: HostFlags): Omit<HostOptions, 'home'> {
  if (Boolean(opts.tlsCert) !== Boolean(opts.tlsKey)) throw new HerdsError('EINVAL', '--tls-cert and --tls-key go together')
  return {
    port: parseFlag(Port, opts.port, '--port'),
    address: parseFlag(ListenAddress, opts.listen, '--listen'),
    tls: opts.tlsCert && opts.tlsKey ? { cert: readFlagFile(opts.tlsCert, '--tls-cert'), key: readFlagFile(opts.tlsKey, '--tls-key') } : undefined,
    insecure: opts.insecure,
    defaultNode: opts.defaultNode === undefined ? undefined : parseFlag(NodeName, opts.defaultNode, '--default-node'),
  }
}

/** --job-expiry: how long a job from `new` or `mkdir` waits for its cmd. */
const JOB_EXPIRY_OPTION = [
  '--job-expiry <seconds>',
  'a job made by exec/new or mkdir exec/jobs/<name> that gets no cmd within this expires',
  String(RUN_DEFAULTS.expireIdleMs / 1000),
] as const

/** --export, repeatable; checked in the action so a bad one is one clear line. */
const EXPORT_OPTION = [
  '--export <name=path[:ro]>',
  'show a directory of this machine at nodes/<node>/fs/<name>/ (":ro": read-only); repeatable',
  (value: string, all: string[]) => [...all, value],
  [] as string[],
] as const

/** --allow-other: the mount shared with this machine's other users, within the modes shown. */
const ALLOW_OTHER_OPTION = [
  '--allow-other',
  'let this machine\'s other users use the mount, as the modes shown allow (every file is yours; commands and control stay yours alone)',
] as const

const program = new Command()
  .name('herds')
  .description('The machines you own as one filesystem that is also an API.')
  .version(VERSION)
  .showHelpAfterError()
  .enablePositionalOptions()

withHostOptions(program.command('up')
  .description('run a host, this machine as a node, and a mount, in one process'))
  .option('--mount <dir>', 'where to mount', defaultMountpoint())
  .option('--name <node>', 'this node\'s name', defaultNodeName())
  .option(...EXPORT_OPTION)
  .option(...JOB_EXPIRY_OPTION)
  .option(...ALLOW_OTHER_OPTION)
  .action(async (opts: HostFlags & { mount: string, name: string, export: string[], jobExpiry: string, allowOther?: boolean }) => {
    const name = parseFlag(NodeName, opts.name, '--name')
    parseFlag(JobExpiry, opts.jobExpiry, '--job-expiry') // before anything starts
    const dir = resolve(parseFlag(Dir, opts.mount, '--mount'))
    const exports = opts.export.reduce<Export[]>((all, value) => collectExports(value, all), [])
    // Everything that could stop the mount is checked before the host and node start.
    checkFuseDevice()
    loadFuseLayer()
    if (opts.allowOther) checkAllowOther()
    await prepareMountpoint(dir)
    exitOnSignals()
    const host = await runHost({ defaultNode: name, ...opts })
    // The local node and mount get tokens of their own, made anew each start.
    const nodeToken = (await host.tokens.put({ name: `up-node-${name}`, scope: 'node', node: name })).secret
    const mountToken = (await host.tokens.put({ name: 'up-mount', scope: 'admin' })).secret
    const url = loopbackUrl(host.url)
    // Both connect inside this process: no loopback connection, no WebSocket framing (tree/link.ts).
    await runNode(url, name, exports, { token: nodeToken, open: () => host.link(nodeToken) }, opts.jobExpiry)
    await runMount(url, dir, { token: mountToken, open: () => host.link(mountToken) }, opts.allowOther)
    say(`ready: try   echo 'uname -a' > ${dir}/nodes/${name}/exec/cmd && cat ${dir}/nodes/${name}/exec/stdout`)
    say('Ctrl-C to stop')
  })

withHostOptions(program.command('host')
  .description('run the host alone'))
  .option('--default-node <name>', 'the node /.herds/venoms/run runs on (default: the first to connect)')
  .action(async (opts: HostFlags) => {
    exitOnSignals()
    await runHost(opts)
  })

program.command('node')
  .description('run this machine as a node of a host')
  .requiredOption('--host <url>', 'the host, e.g. ws://127.0.0.1:7077')
  .option('--name <node>', 'this node\'s name', defaultNodeName())
  .option(...EXPORT_OPTION)
  .option(...JOB_EXPIRY_OPTION)
  .option(...TOKEN_OPTION)
  .option(...CA_OPTION)
  .action(async (opts: AccessFlags & { host: string, name: string, export: string[], jobExpiry: string }) => {
    const url = parseFlag(HostUrl, opts.host, '--host')
    const name = parseFlag(NodeName, opts.name, '--name')
    parseFlag(JobExpiry, opts.jobExpiry, '--job-expiry')
    const exports = opts.export.reduce<Export[]>((all, value) => collectExports(value, all), [])
    const access = await accessFrom(opts)
    exitOnSignals()
    await runNode(url, name, exports, access, opts.jobExpiry)
  })

program.command('mount')
  .description('mount a host\'s namespace at a directory')
  .argument('<url>', 'the host, e.g. ws://127.0.0.1:7077')
  .argument('[dir]', 'where to mount', defaultMountpoint())
  .option(...TOKEN_OPTION)
  .option(...CA_OPTION)
  .option(...ALLOW_OTHER_OPTION)
  .action(async (url: string, dir: string, opts: AccessFlags & { allowOther?: boolean }) => {
    const hostUrl = parseFlag(HostUrl, url, 'url')
    const access = await accessFrom(opts)
    if (opts.allowOther) checkAllowOther()
    exitOnSignals()
    await runMount(hostUrl, resolve(parseFlag(Dir, dir, 'dir')), access, opts.allowOther)
  })

registerClientCommands(program)
registerMcpCommand(program)
registerForwardCommand(program)
registerMachineCommands(program, say)

program.parseAsync().catch(async (err: unknown) => {
  process.stderr.write(`herds: ${toHerdsError(err).message}\n`)
  await stopAll(1)
})
