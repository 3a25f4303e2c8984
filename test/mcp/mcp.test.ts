// `herds mcp` started as a harness starts it (a child process on stdio, or on HTTP), driven by the MCP
// SDK's own client against a real host and node: every tool, errors, a read token, progress, cancellation.
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import t from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { againPastFenceRace, HERDS_BIN, spawnHerds, startHostAndNode, tempDir, type Teardown } from '../e2e/harness.js'

const { url, admin, hostHome } = await startHostAndNode(t, 'studio')
const env = { ...process.env, HERDS_URL: url, HERDS_TOKEN: admin, HERDS_HOME: hostHome } as Record<string, string>
const herds = (args: string[]): string => spawnSync(process.execPath, [HERDS_BIN, ...args], { env, encoding: 'utf8', timeout: 30_000 }).stdout
const readToken = herds(['token', 'create', 'mcp-reader', '--scope', 'read']).trim()

/** A client of `herds mcp` on stdio, closed (and its process with it) at teardown. */
async function stdioClient (tt: Teardown, extraEnv: Record<string, string> = {}, args: string[] = []): Promise<Client> {
  const client = new Client({ name: 'test', version: '1' })
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [HERDS_BIN, 'mcp', ...args], env: { ...env, ...extraEnv }, stderr: 'pipe' }))
  tt.teardown(() => client.close())
  return client
}

const text = (result: unknown): string => ((result as CallToolResult).content[0] as { text: string }).text
const answer = (result: unknown): any => JSON.parse(text(result))

const admins = await stdioClient(t)

t.test('the tools are listed with their input schemas; a run token gets all of them', async (t) => {
  const { tools } = await admins.listTools()
  t.same(tools.map((tool) => tool.name).sort(), ['job', 'kill', 'list', 'mkdir', 'nodes', 'read', 'remove', 'run', 'sandbox_create', 'sandbox_remove', 'start', 'write'])
  const run = tools.find((tool) => tool.name === 'run')!
  t.match(run.inputSchema, { type: 'object', properties: { command: { type: 'string' } }, required: ['command'] })
  t.ok(run.description!.length > 40, 'a description an agent can act on')
})

t.test('nodes, and files: mkdir, write, append, list, read (text, offset, binary), remove', async (t) => {
  const nodes = answer(await admins.callTool({ name: 'nodes', arguments: {} }))
  t.match(nodes, [{ name: 'studio', online: true }])
  t.type(nodes[0].cpus, 'number')
  const dir = '/nodes/studio/volumes/agent/notes'
  t.match(answer(await admins.callTool({ name: 'mkdir', arguments: { path: dir, parents: true } })), { made: true })
  await admins.callTool({ name: 'write', arguments: { path: `${dir}/a.txt`, content: 'hello ' } })
  await admins.callTool({ name: 'write', arguments: { path: `${dir}/a.txt`, content: 'world\n', append: true } })
  t.equal(text(await admins.callTool({ name: 'read', arguments: { path: `${dir}/a.txt` } })), 'hello world\n')
  const part = await admins.callTool({ name: 'read', arguments: { path: `${dir}/a.txt`, offset: 6, length: 3 } }) as CallToolResult
  t.equal(text(part), 'wor')
  t.match((part.content[1] as { text: string }).text, /read on with offset 9/, 'says where to read on')
  await admins.callTool({ name: 'write', arguments: { path: `${dir}/b.bin`, content: Buffer.from([0, 255, 1, 254]).toString('base64'), encoding: 'base64' } })
  const binary = await admins.callTool({ name: 'read', arguments: { path: `${dir}/b.bin` } }) as CallToolResult
  t.match(binary.content[0], { type: 'resource', resource: { mimeType: 'application/octet-stream', blob: Buffer.from([0, 255, 1, 254]).toString('base64') } }, 'binary as a base64 blob')
  t.match(answer(await admins.callTool({ name: 'list', arguments: { path: dir } })), { entries: [{ name: 'a.txt', type: 'file', size: 12 }, { name: 'b.bin', type: 'file', size: 4 }] })
  const notEmpty = await admins.callTool({ name: 'remove', arguments: { path: dir } }) as CallToolResult
  t.equal(notEmpty.isError, true)
  t.match(text(notEmpty), /^EISDIR: /)
  await admins.callTool({ name: 'remove', arguments: { path: '/nodes/studio/volumes/agent', recursive: true } })
  t.notOk(answer(await admins.callTool({ name: 'list', arguments: { path: '/nodes/studio/volumes' } })).entries.some((e: { name: string }) => e.name === 'agent'), 'gone')
})

t.test('a bad path is a tool error with the errno name, never a stack', async (t) => {
  const missing = await admins.callTool({ name: 'read', arguments: { path: '/nodes/studio/volumes/nothing/here' } }) as CallToolResult
  t.equal(missing.isError, true)
  t.equal(text(missing), 'ENOENT: /nodes/studio/volumes/nothing/here', 'the path as the agent gave it')
  t.notMatch(text(missing), /\n\s+at /, 'no stack')
  const nowhere = await admins.callTool({ name: 'run', arguments: { command: 'true', node: 'no such node!' } }) as CallToolResult
  t.equal(nowhere.isError, true)
  t.match(text(nowhere), /^EINVAL: .*not a node name/)
  t.equal(text(await admins.callTool({ name: 'job', arguments: { id: '999999' } })), 'ENOENT: no job 999999 on studio (it never was, or was pruned)')
})

t.test('run: exit code, stdout, stderr, env, stdin, a sandbox; long output cut with the job id to read on', async (t) => {
  const ran = answer(await admins.callTool({ name: 'run', arguments: { command: 'read line; echo "$line $GREETING"; echo oops >&2; exit 3', env: { GREETING: 'there' }, stdin: 'hi\n' } }))
  t.match(ran, { node: 'studio', state: 'exited', exitCode: 3, stdout: 'hi there\n', stderr: 'oops\n' })
  const long = answer(await admins.callTool({ name: 'run', arguments: { command: 'seq 1 100000' } }))
  t.equal(long.stdout.length, 64 * 1024, 'cut at 64 KiB')
  t.match(long.note, new RegExp(`stdout cut at 65536 of 588895 bytes: read the rest with the job tool \\(id ${long.id}, stdoutOffset 65536\\)`))
  const rest = answer(await admins.callTool({ name: 'job', arguments: { id: long.id, stdoutOffset: 588895 - 7 } }))
  t.equal(rest.stdout, '100000\n', 'the end, read on from an offset')
  t.equal(rest.stdoutOffset, 588895)
  t.match(answer(await admins.callTool({ name: 'sandbox_create', arguments: { name: 'mcpbox' } })), { sandbox: 'mcpbox', workspace: '/nodes/studio/sandboxes/mcpbox/workspace' })
  const pwd = await againPastFenceRace(async () => answer(await admins.callTool({ name: 'run', arguments: { command: 'pwd', sandbox: 'mcpbox' } })), (r) => ({ stderr: r.stderr, exit: r.exitCode }))
  t.match(pwd, { sandbox: 'mcpbox', stdout: /sandboxes\/mcpbox\/workspace\n$/ })
  t.match(answer(await admins.callTool({ name: 'sandbox_remove', arguments: { name: 'mcpbox' } })), { removed: true })
  const gone = await admins.callTool({ name: 'sandbox_remove', arguments: { name: 'mcpbox' } }) as CallToolResult
  t.match(text(gone), /^ENOENT: /, 'removing it again says it is not there, and makes nothing')
})

t.test('start, job (wait, offsets), kill', async (t) => {
  const started = answer(await admins.callTool({ name: 'start', arguments: { command: 'echo begun; sleep 30' } }))
  t.match(started, { node: 'studio', state: 'running' })
  let seen = answer(await admins.callTool({ name: 'job', arguments: { id: started.id, wait: 1 } }))
  for (let i = 0; i < 20 && seen.stdout === ''; i++) seen = answer(await admins.callTool({ name: 'job', arguments: { id: started.id } }))
  t.match(seen, { state: 'running', stdout: 'begun\n', stdoutOffset: 6 })
  t.match(answer(await admins.callTool({ name: 'kill', arguments: { id: started.id } })), { sent: 'TERM' })
  const ended = answer(await admins.callTool({ name: 'job', arguments: { id: started.id, wait: 10, stdoutOffset: 6 } }))
  t.match(ended, { state: 'killed', signal: 'SIGTERM', stdout: '', stdoutOffset: 6 })
})

t.test('progress: new output arrives while run runs, before its end', async (t) => {
  const seen: Array<{ message?: string, at: number }> = []
  const result = answer(await admins.callTool({ name: 'run', arguments: { command: 'echo first; sleep 2; echo second' } }, undefined, {
    onprogress: (p) => { seen.push({ message: p.message, at: Date.now() }) },
  }))
  const ended = Date.now()
  t.equal(result.stdout, 'first\nsecond\n')
  const first = seen.find((p) => p.message?.includes('first'))
  t.ok(first, 'the first line came as progress')
  t.ok(first && ended - first.at > 1000, 'over a second before the call ended')
})

t.test('cancelling run kills the job', async (t) => {
  const controller = new AbortController()
  const call = admins.callTool({ name: 'run', arguments: { command: 'echo started; sleep 60; echo never' } }, undefined, {
    signal: controller.signal,
    onprogress: () => controller.abort(),
  })
  await t.rejects(call, 'the call ends cancelled')
  const jobs = JSON.parse(text(await admins.readResource({ uri: 'herds:///.herds/catalog/jobs.json' }).then((r) => ({ content: [{ text: (r.contents[0] as { text: string }).text }] }))))
  const job = jobs.find((j: { cmd: string }) => j.cmd.includes('echo never'))
  t.ok(job, 'the job is in the catalog')
  const ended = answer(await admins.callTool({ name: 'job', arguments: { id: job.id, wait: 10 } }))
  t.equal(ended.state, 'killed', 'and ended by the cancel, not after 60 s')
  t.notMatch(ended.stdout, /never/)
})

t.test('resources: the catalog, and templates for node and job files', async (t) => {
  const { resources } = await admins.listResources()
  const uris = resources.map((r) => r.uri)
  for (const uri of ['herds:///.herds/catalog/README.md', 'herds:///.herds/catalog/nodes.json', 'herds:///.herds/catalog/schemas/sandbox-config.json', 'herds:///nodes/studio/status.json']) t.ok(uris.includes(uri), uri)
  const readme = await admins.readResource({ uri: 'herds:///.herds/catalog/README.md' })
  t.match((readme.contents[0] as { text: string }).text, /nodes/)
  const { resourceTemplates } = await admins.listResourceTemplates()
  t.same(resourceTemplates.map((r) => r.uriTemplate).sort(), ['herds:///nodes/{node}/exec/jobs/{id}/{file}', 'herds:///nodes/{node}/{file}'])
  const info = await admins.readResource({ uri: 'herds:///nodes/studio/info.json' })
  t.match(JSON.parse((info.contents[0] as { text: string }).text), { name: 'studio' })
})

t.test('a read token (and --scope read) gets only the reading tools, and the host refuses it a change', async (t) => {
  for (const [how, client] of [['read token', await stdioClient(t, { HERDS_TOKEN: readToken })], ['--scope read', await stdioClient(t, {}, ['--scope', 'read'])]] as const) {
    const names = (await client.listTools()).tools.map((tool) => tool.name).sort()
    t.same(names, ['job', 'list', 'nodes', 'read'], how)
    const run = await client.callTool({ name: 'run', arguments: { command: 'true' } }) as CallToolResult
    t.equal(run.isError, true, `${how}: run is refused`)
    t.match(text(run), /run/)
  }
  // Told the tools anyway (--scope run), the host still refuses a read token's write, with its reason.
  const forced = await stdioClient(t, { HERDS_TOKEN: readToken }, ['--scope', 'run'])
  const write = await forced.callTool({ name: 'write', arguments: { path: '/nodes/studio/volumes/x.txt', content: 'no' } }) as CallToolResult
  t.equal(write.isError, true)
  t.match(text(write), /^EACCES: .*needs a token of scope run; this one \("mcp-reader"\) is read/)
  const run = await forced.callTool({ name: 'run', arguments: { command: 'true' } }) as CallToolResult
  t.match(text(run), /^EACCES: /, 'a read token is refused for run')
})

t.test('Streamable HTTP: the same tools, the token required, sessions apart', async (t) => {
  const proc = spawnHerds(t, ['mcp', '--http', '0'], hostHome, { HERDS_URL: url, HERDS_TOKEN: admin })
  t.teardown(() => proc.stop())
  const endpoint = (await proc.waitFor(/mcp (http:\/\/\S+)/))[1]
  const noToken = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' })
  t.equal(noToken.status, 401, 'no token: 401')
  const wrong = await fetch(endpoint, { method: 'POST', headers: { authorization: `Bearer ${readToken}`, 'content-type': 'application/json' }, body: '{}' })
  t.equal(wrong.status, 401, 'another token: 401')
  const client = new Client({ name: 'test', version: '1' })
  await client.connect(new StreamableHTTPClientTransport(new URL(endpoint), { requestInit: { headers: { authorization: `Bearer ${admin}` } } }))
  t.teardown(() => client.close())
  t.ok((await client.listTools()).tools.some((tool) => tool.name === 'run'))
  const ran = answer(await client.callTool({ name: 'run', arguments: { command: 'echo over http' } }))
  t.equal(ran.stdout, 'over http\n')
  const seen: string[] = []
  await client.callTool({ name: 'run', arguments: { command: 'echo one; sleep 1; echo two' } }, undefined, { onprogress: (p) => { if (p.message) seen.push(p.message) } })
  t.ok(seen.some((m) => m.includes('one')), 'progress over HTTP too')
  // fetch sets Host itself, so the rebinding attempt is made with node:http, which sends the header given.
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'x', version: '1' } } })
  const rebound = await new Promise<{ status: number }>((resolve, reject) => {
    const req = request(endpoint, { method: 'POST', headers: { authorization: `Bearer ${admin}`, host: 'evil.example', 'content-type': 'application/json', accept: 'application/json, text/event-stream' } }, (res) => { res.resume(); resolve({ status: res.statusCode ?? 0 }) })
    req.on('error', reject)
    req.end(body)
  })
  t.equal(rebound.status, 403, 'another Host header (DNS rebinding) is refused')
})

t.test('--print-config: how a harness starts it, with no secret inline', async (t) => {
  const dir = tempDir(t)
  const tokenFile = join(dir, 'token')
  writeFileSync(tokenFile, admin + '\n', { mode: 0o600 })
  const out = spawnSync(process.execPath, [HERDS_BIN, 'mcp', '--print-config', '--token-file', tokenFile, '--host', url], { env, encoding: 'utf8' })
  const config = JSON.parse(out.stdout)
  t.match(config, { mcpServers: { herds: { command: process.execPath, args: [HERDS_BIN, 'mcp', '--host', url, '--token-file', tokenFile] } } })
  t.notMatch(out.stdout, /herds_/, 'no token in it')
  // And the config works: started as printed, the server answers.
  const client = new Client({ name: 'test', version: '1' })
  const server = config.mcpServers.herds
  await client.connect(new StdioClientTransport({ command: server.command, args: server.args, env: { PATH: process.env.PATH ?? '', HERDS_HOME: dir } }))
  t.teardown(() => client.close())
  t.match(answer(await client.callTool({ name: 'nodes', arguments: {} })), [{ name: 'studio' }])
})

t.test('bad flags: one line, no stack', async (t) => {
  const bad = spawnSync(process.execPath, [HERDS_BIN, 'mcp', '--scope', 'root'], { env, encoding: 'utf8' })
  t.equal(bad.status, 1)
  t.match(bad.stderr, /^herds: --scope: read \(only the reading tools\) or run/)
  t.equal(bad.stderr.trim().split('\n').length, 1)
})
