#!/usr/bin/env node
// An agent's tool loop that uses nothing but reads and writes on the mount: no SDK, no
// network code. Its tools are four plain file operations on the namespace; a real agent
// would let a model choose the next call, here a short script of calls stands in for it.
//
//   node examples/agent-loop.mjs [MOUNTPOINT]   (default: $HERDS_MOUNT, else ~/herds; /Volumes/herds on macOS)
// It leaves its sandbox, nodes/<node>/sandboxes/agent, with its work in it.
import { readFile, readdir, writeFile, mkdir } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'

const mount = process.argv[2] ?? process.env.HERDS_MOUNT ?? (process.platform === 'darwin' ? '/Volumes/herds' : join(homedir(), 'herds'))
const at = (path) => join(mount, path)

/** The tools an agent gets: each is one or two file operations. */
const tools = {
  /** Reads a file of the namespace (README.md, a catalog file, a job's output). */
  read: async ({ path }) => readFile(at(path), 'utf8'),
  /** Lists a folder. */
  list: async ({ path }) => (await readdir(at(path))).join('\n'),
  /** Writes a file (into a workspace or a volume). */
  write: async ({ path, content }) => { await writeFile(at(path), content); return `wrote ${content.length} bytes to ${path}` },
  /** Makes a folder: a sandbox, a volume, a folder in a workspace. Already there is fine. */
  mkdir: async ({ path }) => { await mkdir(at(path)).catch((err) => { if (err.code !== 'EEXIST') throw err }); return `made ${path}` },
  /** Runs a command in an exec/ folder, in a job of its own: read new, write cmd, read exit and output. */
  run: async ({ exec, command }) => {
    const id = (await readFile(at(`${exec}/new`), 'utf8')).trim()
    await writeFile(at(`${exec}/jobs/${id}/cmd`), command + '\n')
    const exit = (await readFile(at(`${exec}/jobs/${id}/exit`), 'utf8')).trim()
    const output = await readFile(at(`${exec}/jobs/${id}/output`), 'utf8')
    return `exit ${exit}\n${output}`
  },
}

/**
 * Stands in for the model: given what the tools said so far, the next call, or null when
 * done. Like an agent with only the mount, it reads the documentation first.
 */
function decide (history) {
  const node = history[2] && JSON.parse(history[2].result).find((n) => n.online)?.name
  const box = `nodes/${node}/sandboxes/agent`
  const plan = [
    () => ({ tool: 'read', args: { path: 'README.md' } }),
    () => ({ tool: 'read', args: { path: '.herds/catalog/README.md' } }),
    () => ({ tool: 'read', args: { path: '.herds/catalog/nodes.json' } }),
    () => node ? { tool: 'mkdir', args: { path: box } } : null,
    () => ({ tool: 'write', args: { path: `${box}/workspace/notes.txt`, content: 'the machines you own as one filesystem\n' } }),
    () => ({ tool: 'write', args: { path: `${box}/workspace/count.sh`, content: 'echo "words: $(wc -w < notes.txt)" | tee result.txt\n' } }),
    () => ({ tool: 'run', args: { exec: `${box}/exec`, command: 'sh count.sh' } }),
    () => ({ tool: 'read', args: { path: `${box}/workspace/result.txt` } }),
  ]
  return plan[history.length]?.() ?? null
}

const history = []
for (let call = decide(history); call; call = decide(history)) {
  let result
  try {
    result = await tools[call.tool](call.args)
  } catch (err) {
    result = `error ${err.code}: ${err.message}` // an agent sees the errno and goes on
  }
  history.push({ call, result })
  console.log(`> ${call.tool} ${JSON.stringify(call.args)}\n${result.trim().split('\n').slice(0, 6).join('\n')}\n`)
}
console.log(`done: ${history.length} tool calls, all through the mount`)
