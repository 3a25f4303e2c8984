// An agent's whole session through MCP alone, against `herds up`: discover the nodes, make a sandbox,
// write a script into it, run it, read what it wrote, remove the sandbox. The mount sees the same files.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { againPastFenceRace, HERDS_BIN, herdsUp } from './harness.js'

const up = await herdsUp(t, 'agentnode')
const client = new Client({ name: 'agent', version: '1' })
await client.connect(new StdioClientTransport({ command: process.execPath, args: [HERDS_BIN, 'mcp'], env: { PATH: process.env.PATH ?? '', HERDS_HOME: up.home }, stderr: 'pipe' }))
t.teardown(() => client.close())

/** Calls a tool as an agent does and reads its JSON answer; a tool error fails the test with its text. */
async function use (t: Test, name: string, args: Record<string, unknown>): Promise<any> {
  const result = await client.callTool({ name, arguments: args }) as CallToolResult
  const text = (result.content[0] as { text: string }).text
  t.notOk(result.isError, `${name}: ${result.isError ? text : 'ok'}`)
  try { return JSON.parse(text) } catch { return text }
}

t.test('discover, sandbox, write, run, read, remove', async (t) => {
  const nodes = await use(t, 'nodes', {})
  const node = nodes.find((n: { online: boolean }) => n.online).name
  t.equal(node, 'agentnode', 'the node is found online')
  const box = await use(t, 'sandbox_create', { node, name: 'task' })
  const script = `${box.workspace}/count.sh`
  await use(t, 'write', { path: script, content: 'for w in "$@"; do echo "$w" | wc -c; done > lengths.txt\necho done\n' })
  t.equal(readFileSync(join(up.mountpoint, script), 'utf8').split('\n')[0], 'for w in "$@"; do echo "$w" | wc -c; done > lengths.txt', 'the mount shows the file the agent wrote')
  const ran = await againPastFenceRace(() => use(t, 'run', { node, sandbox: 'task', command: 'sh count.sh a bb ccc' }), (r) => ({ stderr: r.stderr, exit: r.exitCode }))
  t.match(ran, { exitCode: 0, stdout: 'done\n', stderr: '' })
  const listed = await use(t, 'list', { path: box.workspace })
  t.same(listed.entries.map((e: { name: string }) => e.name), ['count.sh', 'lengths.txt'])
  t.equal(await use(t, 'read', { path: `${box.workspace}/lengths.txt` }), '2\n3\n4\n', 'the output file, read back')
  await use(t, 'sandbox_remove', { node, name: 'task' })
  const gone = join(up.mountpoint, 'nodes', node, 'sandboxes', 'task')
  const since = Date.now()
  while (existsSync(gone) && Date.now() - since < 5000) await new Promise((resolve) => setTimeout(resolve, 50))
  t.notOk(existsSync(gone), `the sandbox is gone from the mount too (after ${Date.now() - since} ms)`)
})
