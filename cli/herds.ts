#!/usr/bin/env node
/** The herds command: run the host, a node, a mount, or all three (`herds up`). */
import { resolve, join } from 'node:path'
import { Command } from 'commander'
import { startHost, type RunningHost } from '../host/server.js'
import { connectHost, type HostConnection } from '../mount/client.js'
import { mountTree, type Mounted } from '../mount/fuse.js'
import { defaultNodeName } from '../nodes/info.js'
import { startNode, type Export, type RunningNode } from '../nodes/node.js'
import { toHerdsError } from '../tree/errno.js'
import { VERSION } from '../tree/version.js'
import { collectExports, DEFAULT_PORT, defaultMountpoint, Dir, herdsHome, HostUrl, NodeName, parseFlag, Port } from './options.js'

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

async function runHost (port: number): Promise<RunningHost> {
  const host = await startHost({ port, home: join(herdsHome(), 'host'), log: say })
  stoppers.push(() => host.stop())
  say(`host   ${host.url}`)
  return host
}

async function runNode (url: string, name: string, exports: Export[]): Promise<RunningNode> {
  const node = await startNode({ host: url, name, home: join(herdsHome(), 'nodes', name), exports })
  stoppers.push(() => node.stop())
  node.dialer.on('disconnect', () => { if (!stopping) say('lost the host; reconnecting') })
  node.dialer.on('connect', () => say(`node   ${name} (connected)`))
  say(`node   ${name}`)
  for (const ex of exports) say(`export ${ex.name} = ${ex.path}${ex.readOnly ? ' (read-only)' : ''}`)
  return node
}

async function runMount (url: string, dir: string): Promise<Mounted> {
  const connection: HostConnection = await connectHost(url)
  stoppers.push(() => connection.close())
  const mounted = await mountTree(connection.tree, dir)
  stoppers.push(() => mounted.unmount())
  say(`mount  ${mounted.mountpoint}`)
  return mounted
}

/** --export, repeatable; checked in the action so a bad one is one clear line. */
const EXPORT_OPTION = [
  '--export <name=path[:ro]>',
  'show a directory of this machine at nodes/<node>/fs/<name>/ (":ro": read-only); repeatable',
  (value: string, all: string[]) => [...all, value],
  [] as string[],
] as const

const program = new Command()
  .name('herds')
  .description('The machines you own as one filesystem that is also an API.')
  .version(VERSION)
  .showHelpAfterError()

program.command('up')
  .description('run a host, this machine as a node, and a mount, in one process')
  .option('--mount <dir>', 'where to mount', defaultMountpoint())
  .option('--name <node>', 'this node\'s name', defaultNodeName())
  .option('--port <n>', 'the host\'s port (0: any free port)', String(DEFAULT_PORT))
  .option(...EXPORT_OPTION)
  .action(async (opts: { mount: string, name: string, port: string, export: string[] }) => {
    const port = parseFlag(Port, opts.port, '--port')
    const name = parseFlag(NodeName, opts.name, '--name')
    const dir = resolve(parseFlag(Dir, opts.mount, '--mount'))
    const exports = opts.export.reduce<Export[]>((all, value) => collectExports(value, all), [])
    exitOnSignals()
    const host = await runHost(port)
    await runNode(host.url, name, exports)
    await runMount(host.url, dir)
    say(`ready: try   echo 'uname -a' > ${dir}/nodes/${name}/exec/cmd && cat ${dir}/nodes/${name}/exec/stdout`)
    say('Ctrl-C to stop')
  })

program.command('host')
  .description('run the host alone')
  .option('--port <n>', 'the port (0: any free port)', String(DEFAULT_PORT))
  .action(async (opts: { port: string }) => {
    const port = parseFlag(Port, opts.port, '--port')
    exitOnSignals()
    await runHost(port)
  })

program.command('node')
  .description('run this machine as a node of a host')
  .requiredOption('--host <url>', 'the host, e.g. ws://127.0.0.1:7077')
  .option('--name <node>', 'this node\'s name', defaultNodeName())
  .option(...EXPORT_OPTION)
  .action(async (opts: { host: string, name: string, export: string[] }) => {
    const url = parseFlag(HostUrl, opts.host, '--host')
    const name = parseFlag(NodeName, opts.name, '--name')
    const exports = opts.export.reduce<Export[]>((all, value) => collectExports(value, all), [])
    exitOnSignals()
    await runNode(url, name, exports)
  })

program.command('mount')
  .description('mount a host\'s namespace at a directory')
  .argument('<url>', 'the host, e.g. ws://127.0.0.1:7077')
  .argument('[dir]', 'where to mount', defaultMountpoint())
  .action(async (url: string, dir: string) => {
    const hostUrl = parseFlag(HostUrl, url, 'url')
    exitOnSignals()
    await runMount(hostUrl, resolve(parseFlag(Dir, dir, 'dir')))
  })

program.parseAsync().catch(async (err: unknown) => {
  process.stderr.write(`herds: ${toHerdsError(err).message}\n`)
  await stopAll(1)
})
