/** `herds mcp`: the namespace as MCP tools for agents, over stdio or Streamable HTTP (docs/mcp.md). */
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'
import { z } from 'zod'
import { serveHttp, serveStdio, scopeOf } from '../mcp/serve.js'
import type { Needs } from '../mcp/tools.js'
import { Herds } from '../mount/sdk/index.js'
import { accessFrom, CA_OPTION, HOST_OPTION, hostFrom, TOKEN_FILE_OPTION, TOKEN_OPTION, type AccessFlags } from './access.js'
import { parseFlag, Port } from './options.js'

interface McpFlags extends AccessFlags { host?: string, scope?: string, http?: string, printConfig?: boolean }

const Scope = z.enum(['read', 'run'], { message: 'read (only the reading tools) or run (all of them)' })

export function registerMcpCommand (program: Command): void {
  program.command('mcp')
    .description('serve the namespace as Model Context Protocol tools for AI agents (stdio; or --http)')
    .option(...HOST_OPTION)
    .option(...TOKEN_OPTION)
    .option(...TOKEN_FILE_OPTION)
    .option(...CA_OPTION)
    .option('--scope <scope>', 'read: only the reading tools (a read token gets only those anyway)')
    .option('--http <port>', 'serve Streamable HTTP on 127.0.0.1:<port>/mcp instead of stdio (0: any free port)')
    .option('--print-config', 'print the JSON an agent harness needs to start this server, and exit')
    .action(async (opts: McpFlags) => {
      const wanted = opts.scope === undefined ? undefined : parseFlag(Scope, opts.scope, '--scope')
      const port = opts.http === undefined ? undefined : parseFlag(Port, opts.http, '--http')
      if (opts.printConfig) return printConfig(opts, wanted, port)
      const access = await accessFrom(opts)
      const herds = await Herds.connect({ url: hostFrom(opts.host), ...access })
      const scope: Needs = wanted ?? await scopeOf(herds)
      if (port === undefined) {
        // stdout is the protocol's: anything else goes to stderr.
        await serveStdio(herds, scope)
        herds.close()
        return
      }
      const server = await serveHttp(herds, scope, access.token, port)
      process.stdout.write(`herds: mcp ${server.url} (${scope === 'read' ? 'reading tools only' : 'all tools'}; send Authorization: Bearer <token>)\n`)
      await new Promise<void>((stop) => {
        for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => stop())
      })
      await server.close()
      herds.close()
    })
}

/** The harness's config: how to start this very command, with no secret inline where a file or HERDS_HOME serves. */
function printConfig (opts: McpFlags, scope: Needs | undefined, port: number | undefined): void {
  const note = (line: string): void => { process.stderr.write(`herds: ${line}\n`) }
  if (port !== undefined) {
    process.stdout.write(JSON.stringify({ mcpServers: { herds: { type: 'http', url: `http://127.0.0.1:${port}/mcp`, headers: { Authorization: 'Bearer ${HERDS_TOKEN}' } } } }, null, 2) + '\n')
    return note(`start the server with: herds mcp --http ${port}; the harness sends the token (HERDS_TOKEN in its environment; a harness without \${VAR} expansion needs it written in)`)
  }
  const args = [fileURLToPath(new URL('./herds.js', import.meta.url)), 'mcp']
  const env: Record<string, string> = {}
  if (opts.host !== undefined) args.push('--host', hostFrom(opts.host))
  else if (process.env.HERDS_URL) env.HERDS_URL = process.env.HERDS_URL
  if (opts.tokenFile !== undefined) args.push('--token-file', resolve(opts.tokenFile))
  else if (opts.token !== undefined || process.env.HERDS_TOKEN) {
    env.HERDS_TOKEN = '<your token>'
    note('the token is not written here: put it in a file (mode 600) and print again with --token-file FILE, or fill in HERDS_TOKEN')
  }
  if (opts.ca !== undefined) args.push('--ca', resolve(opts.ca))
  if (scope !== undefined) args.push('--scope', scope)
  if (process.env.HERDS_HOME) env.HERDS_HOME = process.env.HERDS_HOME
  process.stdout.write(JSON.stringify({ mcpServers: { herds: { command: process.execPath, args, ...(Object.keys(env).length > 0 ? { env } : {}) } } }, null, 2) + '\n')
}
