/**
 * `herds mcp`: the namespace as a Model Context Protocol server, its tools
 * (tools.ts) and the catalog as resources, over stdio or Streamable HTTP.
 */
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js'
import type { CallToolResult, ReadResourceResult } from '@modelcontextprotocol/sdk/types.js'
import type { z } from 'zod'
import type { Herds } from '../mount/sdk/herds.js'
import { toHerdsError } from '../tree/errno.js'
import { checkName } from '../tree/names.js'
import { VERSION } from '../tree/version.js'
import { namedAt, TOOLS, type Call, type Needs, type Tool } from './tools.js'

const CATALOG = '/.herds/catalog'

/** What the server tells a client about itself when it connects. */
const INSTRUCTIONS = `Herds: the machines of a herd as one namespace. Call nodes to see the machines, run to run a command on one (or in a sandbox), list/read/write for files (a node's volumes are under /nodes/<node>/volumes/). The catalog (${CATALOG}/README.md, a resource) says how everything works.`

/** An MCP server for one client: the tools `scope` allows, and the catalog. */
export async function createMcpServer (herds: Herds, scope: Needs): Promise<McpServer> {
  const server = new McpServer({ name: 'herds', version: VERSION }, { instructions: INSTRUCTIONS, capabilities: { tools: {}, resources: {} } })
  for (const [name, spec] of Object.entries(TOOLS) as Array<[string, Tool<z.ZodRawShape>]>) {
    if (spec.needs === 'run' && scope === 'read') continue
    server.registerTool(name, { description: spec.description, inputSchema: spec.input, annotations: spec.annotations }, async (args: Record<string, unknown>, extra) => {
      const token = extra._meta?.progressToken
      const call: Call = {
        herds,
        signal: extra.signal,
        progress: async (progress, message) => {
          if (token !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress, message } })
        },
      }
      try {
        return await spec.call(args as never, call)
      } catch (err) {
        return toolError(typeof args.path === 'string' ? namedAt(err, args.path) : err)
      }
    })
  }
  await addResources(server, herds)
  return server
}

/** A refusal as an MCP tool error: the errno name and the host's reason, never a stack. */
export function toolError (err: unknown): CallToolResult {
  const { code, message } = toHerdsError(err)
  return { isError: true, content: [{ type: 'text', text: message.startsWith(code) ? message : `${code}: ${message}` }] }
}

/** The catalog's files as resources, and templates for a node's and a job's files. */
async function addResources (server: McpServer, herds: Herds): Promise<void> {
  for (const path of await catalogFiles(herds)) {
    server.registerResource(path.slice(CATALOG.length + 1), uriOf(path), { mimeType: mimeOf(path), description: `${path} of the host's catalog` }, async (uri) => readResource(herds, uri.href, path))
  }
  const nodeFiles = new ResourceTemplate('herds:///nodes/{node}/{file}', {
    list: async () => ({
      resources: (await herds.nodes()).flatMap((n) => ['info.json', 'status.json'].map((file) => ({ uri: uriOf(`/nodes/${n.name}/${file}`), name: `${n.name}/${file}`, mimeType: 'application/json' }))),
    }),
  })
  server.registerResource('node files', nodeFiles, { description: 'a node\'s info.json (what it is) and status.json (load, memory, running jobs)' }, async (uri, vars) => {
    checkName(String(vars.node), 'node')
    return readResource(herds, uri.href, `/nodes/${String(vars.node)}/${oneName(vars.file)}`)
  })
  const jobFiles = new ResourceTemplate('herds:///nodes/{node}/exec/jobs/{id}/{file}', { list: undefined })
  server.registerResource('job files', jobFiles, { description: 'a job\'s status, cmd, stdout, stderr or exit' }, async (uri, vars) => {
    checkName(String(vars.node), 'node')
    checkName(String(vars.id), 'job')
    return readResource(herds, uri.href, `/nodes/${String(vars.node)}/exec/jobs/${String(vars.id)}/${oneName(vars.file)}`)
  })
}

/** Every file of the catalog, its subfolders' too (one level down, as it is). */
async function catalogFiles (herds: Herds): Promise<string[]> {
  const found: string[] = []
  for (const name of (await herds.files.list(CATALOG)).sort()) {
    const path = `${CATALOG}/${name}`
    if (!(await herds.files.stat(path)).directory) found.push(path)
    else for (const inner of (await herds.files.list(path)).sort()) found.push(`${path}/${inner}`)
  }
  return found
}

async function readResource (herds: Herds, uri: string, path: string): Promise<ReadResourceResult> {
  const bytes = await herds.files.read(path)
  return { contents: [{ uri, mimeType: mimeOf(path), text: bytes.toString('utf8') }] }
}

const uriOf = (path: string): string => `herds://${path}`
const oneName = (value: string | string[]): string => {
  const name = String(value)
  checkName(name, 'file')
  return name
}
const mimeOf = (path: string): string => path.endsWith('.json') ? 'application/json' : path.endsWith('.md') ? 'text/markdown' : 'text/plain'
