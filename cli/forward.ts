/** `herds forward [LOCAL:]PORT`: a port on a node reached from this machine, as ssh -L gives one. */
import { hostname } from 'node:os'
import type { Command } from 'commander'
import { z } from 'zod'
import { Herds } from '../mount/sdk/index.js'
import { HerdsError, toHerdsError } from '../tree/errno.js'
import { SafeName } from '../tree/wire.js'
import { accessFrom, CA_OPTION, HOST_OPTION, hostFrom, TOKEN_OPTION, type AccessFlags } from './access.js'
import { parseFlag } from './options.js'

interface ForwardFlags extends AccessFlags { host?: string, node?: string, sandbox?: string, bind?: string }

/** LOCAL:PORT, or PORT for the same number on both sides; LOCAL may be 0 (any free port). */
const Spec = z.string().regex(/^(?:(0|[1-9]\d{0,4}):)?([1-9]\d{0,4})$/, 'LOCAL_PORT:PORT or PORT, ports from 1 to 65535, e.g. 8080:3000')
  .transform((spec) => {
    const [local, remote] = spec.includes(':') ? spec.split(':').map(Number) : [Number(spec), Number(spec)]
    return { local, remote }
  })
  .refine((s) => s.local <= 65535 && s.remote <= 65535, 'ports go up to 65535')

export function registerForwardCommand (program: Command): void {
  program.command('forward')
    .description('carry connections to a local port to a port on a node (as ssh -L), until Ctrl-C')
    .argument('<spec>', 'LOCAL_PORT:PORT (or PORT: the same number here); LOCAL_PORT 0 picks a free one')
    .option('--node <name>', 'the node (default: the host\'s default node)')
    .option('--sandbox <name>', 'a port inside this sandbox of the node')
    .option('--bind <address>', 'the local address to listen on', '127.0.0.1')
    .option(...HOST_OPTION)
    .option(...TOKEN_OPTION)
    .option(...CA_OPTION)
    .action(async (spec: string, opts: ForwardFlags) => {
      try {
        const { local, remote } = parseFlag(Spec, spec, 'forward')
        const sandbox = opts.sandbox === undefined ? undefined : parseFlag(SafeName, opts.sandbox, '--sandbox')
        const herds = await Herds.connect({ url: hostFrom(opts.host), ...await accessFrom(opts) })
        try {
          const node = opts.node === undefined ? await herds.defaultNode() : herds.node(parseFlag(SafeName, opts.node, '--node'))
          await checkReachable(herds, node.path, sandbox)
          await checkNotItself(herds, node.path, local, remote)
          const forwarding = await node.forward(remote, {
            sandbox,
            localPort: local,
            address: opts.bind,
            onError: (err) => process.stderr.write(`herds: a connection to ${node.name}:${remote} failed: ${err.message}\n`),
          })
          const where = sandbox ? `${node.name}/${sandbox}` : node.name
          process.stdout.write(`herds: forwarding ${forwarding.address}:${forwarding.port} to port ${remote} on ${where} (Ctrl-C to stop)\n`)
          const signal = await new Promise<NodeJS.Signals>((stop) => {
            for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(name, () => stop(name))
          })
          process.stderr.write(`herds: stopping (${signal}); ${forwarding.connections()} connection(s) closed\n`)
          await forwarding.close()
        } finally {
          herds.close()
        }
      } catch (err) {
        process.stderr.write(`herds: ${toHerdsError(err).message}\n`)
        process.exitCode = 255
      }
    })
}

/** Refuses at once what every connection would be refused: no such node or sandbox, a node offline, a sandbox without network. */
async function checkReachable (herds: Herds, nodePath: string, sandbox: string | undefined): Promise<void> {
  const status = JSON.parse((await herds.files.read(`${nodePath}/status.json`)).toString()) as { online?: boolean, lastSeen?: string }
  if (status.online === false) throw new HerdsError('EHOSTDOWN', `${nodePath.slice(7)} is offline (last seen ${status.lastSeen ?? 'never'})`)
  if (sandbox === undefined) return
  const box = JSON.parse((await herds.files.read(`${nodePath}/sandboxes/${sandbox}/status.json`)).toString()) as { network?: boolean, fence?: string }
  if (box.network === false && box.fence !== 'none') throw new HerdsError('EACCES', `sandbox ${sandbox} has "network": false: nothing can connect to its ports`)
}

/** On the node's own machine, PORT to the same PORT would carry each connection back into this listener, for ever. */
async function checkNotItself (herds: Herds, nodePath: string, local: number, remote: number): Promise<void> {
  if (local !== remote) return
  const info = JSON.parse((await herds.files.read(`${nodePath}/info.json`)).toString()) as { hostname?: string }
  if (info.hostname === hostname()) {
    throw new HerdsError('ELOOP', `${nodePath.slice(7)} is this machine (${hostname()}): port ${remote} forwarded to itself would loop; give another local port (herds forward ${remote === 65535 ? 0 : remote + 1}:${remote}), or use 127.0.0.1:${remote} as it is`)
  }
}
