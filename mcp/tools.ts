/**
 * The namespace as MCP tools: a table of handlers, each a few SDK calls, so
 * every tool is file operations a shell on a mount could do too (docs/mcp.md).
 */
import { posix } from 'node:path'
import { z } from 'zod'
import type { CallToolResult, ToolAnnotations } from '@modelcontextprotocol/sdk/types.js'
import { removePath, type Herds, type HerdsNode, type Job } from '../mount/sdk/herds.js'
import { HerdsError, toHerdsError } from '../tree/errno.js'
import { checkName } from '../tree/names.js'
import { JOB_WAIT_MAX_S, LIST_MAX_ENTRIES, OUTPUT_MAX_BYTES, PROGRESS_EVERY_MS, PROGRESS_MAX_BYTES, READ_DEFAULT_BYTES, READ_MAX_BYTES, WRITE_MAX_BYTES } from './limits.js'

/** What a tool is given besides its arguments. */
export interface Call {
  herds: Herds
  /** Aborted when the client cancels the call. */
  signal: AbortSignal
  /** Tells the client how far a long call is, when it asked to be told. */
  progress (progress: number, message: string): Promise<void>
}

/** Scopes rank as the host's do: a read tool needs a read token, a run tool a run token. */
export type Needs = 'read' | 'run'

export interface Tool<S extends z.ZodRawShape> {
  description: string
  input: S
  needs: Needs
  annotations: ToolAnnotations
  call (args: z.infer<z.ZodObject<S>>, call: Call): Promise<CallToolResult>
}

const tool = <S extends z.ZodRawShape>(spec: Tool<S>): Tool<S> => spec

const Path = z.string().min(1).max(4096).describe('a namespace path, e.g. /nodes/studio/volumes/data/notes.txt')
const NodeName = z.string().max(64).optional().describe('the node (see the nodes tool); default: the host\'s default node')
const SandboxName = z.string().max(64).optional().describe('run in this sandbox of the node instead of the node\'s own workspace')
const JobId = z.string().min(1).max(64).describe('the job\'s id, as run or start gave it')
const Env = z.record(z.string().max(256), z.string().max(64 * 1024)).optional().describe('added to the job\'s environment')
const Timeout = z.number().min(0).max(7 * 24 * 3600).optional().describe('seconds before the job is ended (SIGTERM, then SIGKILL)')
const Stdin = z.string().max(WRITE_MAX_BYTES).optional().describe('text for the job\'s standard input; it is closed after it')

/** The path as the namespace knows it: from the root, no way up past it, no NUL byte. */
function clean (path: string): string {
  if (path.includes('\0')) throw new HerdsError('EINVAL', 'a path has no NUL byte')
  return posix.normalize('/' + path).replace(/(.)\/$/, '$1')
}

/**
 * An error told with the path as the agent gave it: a node names the path
 * inside its own tree (a volume's "/a.txt"), which the agent never saw.
 */
export function namedAt (err: unknown, given: string): HerdsError {
  const error = toHerdsError(err)
  const path = clean(given)
  if (error.message.includes(path)) return error
  let reason = error.message.startsWith(`${error.code}: `) ? error.message.slice(error.code.length + 2) : error.message
  if (/^\/\S*$/.test(reason)) reason = '' // nothing but the node's own name for it
  return new HerdsError(error.code, reason ? `${path}: ${reason}` : path)
}

/** A job that is not there, said as the agent named it. */
async function ofJob<T> (where: Record<string, string>, work: Promise<T>): Promise<T> {
  try {
    return await work
  } catch (err) {
    if (toHerdsError(err).code !== 'ENOENT') throw err
    throw new HerdsError('ENOENT', `no job ${where.id} on ${where.node}${where.sandbox ? ` in sandbox ${where.sandbox}` : ''} (it never was, or was pruned)`)
  }
}

const json = (value: unknown): CallToolResult => ({ content: [{ type: 'text', text: JSON.stringify(value, null, 2) }] })

async function nodeOf (herds: Herds, name: string | undefined): Promise<HerdsNode> {
  return name === undefined ? herds.defaultNode() : herds.node(name)
}

/** Output cut to what one answer carries, and whether it was cut. */
function cut (bytes: Buffer, max = OUTPUT_MAX_BYTES): { text: string, cut: boolean } {
  return { text: bytes.subarray(0, max).toString('utf8'), cut: bytes.length > max }
}

/** Bytes as text when they are UTF-8, else as an embedded binary resource (base64, MCP's own encoding). */
function contentOf (path: string, bytes: Buffer): CallToolResult['content'][number] {
  try {
    return { type: 'text', text: new TextDecoder('utf-8', { fatal: true }).decode(bytes) }
  } catch {
    return { type: 'resource', resource: { uri: `herds://${path}`, mimeType: 'application/octet-stream', blob: bytes.toString('base64') } }
  }
}

/** Starts a job with its env, timeout and stdin (then end of file, so nothing waits for more input). */
async function startJob (herds: Herds, args: { command: string, node?: string, sandbox?: string, env?: Record<string, string>, timeout?: number, stdin?: string }): Promise<{ node: HerdsNode, job: Job }> {
  const node = await nodeOf(herds, args.node)
  const job = await node.spawn(args.command, { env: args.env, timeout: args.timeout, sandbox: args.sandbox })
  if (args.stdin !== undefined) await job.write(args.stdin).catch(ignoreEnded)
  await job.end().catch(ignoreEnded)
  return { node, job }
}

/** Stdin of a job that already ended has no reader: not an error here. */
const ignoreEnded = (err: unknown): void => { if (toHerdsError(err).code !== 'EPIPE') throw err }

/** Where a job is, as the job and kill tools take it. */
const whereOf = (node: HerdsNode, sandbox: string | undefined, id: string): Record<string, string> => ({ node: node.name, ...(sandbox ? { sandbox } : {}), id })

/**
 * Collects a running job's output up to the cap, telling the client the new
 * output as it comes (at most one notification each PROGRESS_EVERY_MS).
 */
async function follow (job: Job, call: Call): Promise<{ stdout: Buffer, stderr: Buffer, bytes: { stdout: number, stderr: number } }> {
  const kept = { stdout: [] as Buffer[], stderr: [] as Buffer[] }
  const bytes = { stdout: 0, stderr: 0 }
  let pending = ''
  let last = 0
  const tell = async (force: boolean): Promise<void> => {
    if (pending === '' || (!force && Date.now() - last < PROGRESS_EVERY_MS)) return
    const message = pending.length > PROGRESS_MAX_BYTES ? '…' + pending.slice(-PROGRESS_MAX_BYTES) : pending
    pending = ''
    last = Date.now()
    await call.progress(bytes.stdout + bytes.stderr, message).catch(() => {})
  }
  for await (const chunk of job.output()) {
    if (bytes[chunk.stream] < OUTPUT_MAX_BYTES) kept[chunk.stream].push(chunk.data.subarray(0, OUTPUT_MAX_BYTES - bytes[chunk.stream]))
    bytes[chunk.stream] += chunk.data.length
    pending += chunk.data.toString('utf8')
    if (pending.length > 4 * PROGRESS_MAX_BYTES) pending = pending.slice(-PROGRESS_MAX_BYTES)
    await tell(false)
  }
  await tell(true)
  return { stdout: Buffer.concat(kept.stdout), stderr: Buffer.concat(kept.stderr), bytes }
}

/** Every tool, by name. */
export const TOOLS = {
  nodes: tool({
    description: 'The machines of the herd: name, online, os, arch, cpus, load (1-minute average) and running jobs. Pick a node with a low load per cpu.',
    input: {},
    needs: 'read',
    annotations: { readOnlyHint: true },
    async call (_args, { herds }) {
      const all = await herds.nodes()
      return json(await Promise.all(all.map(async (n) => {
        const [status, info] = n.online ? await Promise.all([herds.node(n.name).status(), herds.node(n.name).info()]).catch(() => [undefined, undefined]) : [undefined, undefined]
        return { name: n.name, online: n.online, os: n.os, arch: n.arch, cpus: info?.cpus ?? null, load: Array.isArray(status?.load) ? status.load[0] : null, runningJobs: status?.runningJobs ?? null, lastSeen: n.lastSeen }
      })))
    },
  }),

  list: tool({
    description: `A folder's entries with their type (file or dir) and size in bytes, at most ${LIST_MAX_ENTRIES}. Start at / ; nodes live under /nodes/<name>/ (exec, volumes, sandboxes, fs).`,
    input: { path: Path },
    needs: 'read',
    annotations: { readOnlyHint: true },
    async call (args, { herds }) {
      const path = clean(args.path)
      const names = (await herds.files.list(path)).sort()
      const shown = names.slice(0, LIST_MAX_ENTRIES)
      const entries = []
      for (let start = 0; start < shown.length; start += 32) {
        entries.push(...await Promise.all(shown.slice(start, start + 32).map(async (name) => {
          const s = await herds.files.stat(posix.join(path, name)).catch(() => undefined)
          return { name, type: s ? (s.directory ? 'dir' : 'file') : 'unknown', size: s && !s.directory ? s.size : null }
        })))
      }
      return json({ path, entries, ...(names.length > shown.length ? { more: names.length - shown.length, note: `${names.length - shown.length} more entries not shown` } : {}) })
    },
  }),

  read: tool({
    description: `A file's content from offset (default 0), at most length bytes (default ${READ_DEFAULT_BYTES}, at most ${READ_MAX_BYTES}). Text comes as text, other bytes as a base64 blob. When more remains, the answer says the offset to read on from. A running job's stdout waits for output: use the job tool for that.`,
    input: {
      path: Path,
      offset: z.number().int().min(0).optional().describe('where to start, in bytes'),
      length: z.number().int().min(1).max(READ_MAX_BYTES).optional().describe('how many bytes at most'),
    },
    needs: 'read',
    annotations: { readOnlyHint: true },
    async call (args, { herds }) {
      const path = clean(args.path)
      const info = await herds.files.stat(path)
      if (info.directory) throw new HerdsError('EISDIR', `${path} is a folder: use the list tool`)
      const offset = args.offset ?? 0
      const length = args.length ?? READ_DEFAULT_BYTES
      const bytes = await herds.files.readAt(path, offset, length)
      const end = offset + bytes.length
      const content = [contentOf(path, bytes)]
      if (bytes.length === length && end < info.size) content.push({ type: 'text', text: `[bytes ${offset}-${end} of ${info.size}; read on with offset ${end}]` })
      return { content }
    },
  }),

  write: tool({
    description: 'Creates or replaces a file with content (or adds to its end with append). Writing a control file acts on it, e.g. /nodes/<n>/exec/cmd runs a command; prefer the run tool for that.',
    input: {
      path: Path,
      content: z.string().max(WRITE_MAX_BYTES * 4 / 3 + 4).describe('the bytes to write: text, or base64 with encoding "base64"'),
      encoding: z.enum(['utf8', 'base64']).optional().describe('how content is written: utf8 (default) or base64'),
      append: z.boolean().optional().describe('add to the end instead of replacing'),
    },
    needs: 'run',
    annotations: { destructiveHint: true },
    async call (args, { herds }) {
      const path = clean(args.path)
      const bytes = Buffer.from(args.content, args.encoding === 'base64' ? 'base64' : 'utf8')
      if (bytes.length > WRITE_MAX_BYTES) throw new HerdsError('EFBIG', `a write carries at most ${WRITE_MAX_BYTES} bytes; append the rest`)
      await (args.append ? herds.files.append(path, bytes) : herds.files.write(path, bytes))
      return json({ path, bytes: bytes.length, appended: Boolean(args.append) })
    },
  }),

  mkdir: tool({
    description: 'Makes a folder (with parents: each missing folder on the way). Under /nodes/<n>/volumes/ it makes a volume, under /nodes/<n>/sandboxes/ a sandbox.',
    input: { path: Path, parents: z.boolean().optional().describe('make missing parent folders too; no error if it exists') },
    needs: 'run',
    annotations: { destructiveHint: false, idempotentHint: true },
    async call (args, { herds }) {
      const path = clean(args.path)
      if (!args.parents) await herds.files.mkdir(path)
      else {
        for (let at = path.indexOf('/', 1); ; at = path.indexOf('/', at + 1)) {
          const step = at === -1 ? path : path.slice(0, at)
          await herds.files.mkdir(step).catch((err: unknown) => { if (toHerdsError(err).code !== 'EEXIST') throw err })
          if (at === -1) break
        }
      }
      return json({ path, made: true })
    },
  }),

  remove: tool({
    description: 'Removes a file, or a folder (recursive: with everything in it).',
    input: { path: Path, recursive: z.boolean().optional().describe('remove a folder and all it holds') },
    needs: 'run',
    annotations: { destructiveHint: true },
    async call (args, { herds }) {
      const path = clean(args.path)
      if (path === '/') throw new HerdsError('EINVAL', 'the root is not removed')
      await removePath(herds.files, path, args.recursive ?? false)
      return json({ path, removed: true })
    },
  }),

  run: tool({
    description: `Runs a shell command on a node (or in a sandbox) to its end: exit code, stdout, stderr (each cut at ${OUTPUT_MAX_BYTES} bytes; the answer says how to read the rest with the job tool). New output is sent as progress while it runs; cancelling the call kills the job. For a long job, use start and job instead.`,
    input: { command: z.string().min(1).max(256 * 1024).describe('a shell command line, e.g. "ls -la | head"'), node: NodeName, sandbox: SandboxName, env: Env, timeout: Timeout, stdin: Stdin },
    needs: 'run',
    annotations: { destructiveHint: true, openWorldHint: true },
    async call (args, call) {
      const { node, job } = await startJob(call.herds, args)
      const kill = (): void => { job.kill('KILL').catch(() => {}) }
      call.signal.addEventListener('abort', kill, { once: true })
      try {
        const output = await follow(job, call)
        const status = await job.status()
        const notes = (['stdout', 'stderr'] as const).filter((s) => output.bytes[s] > OUTPUT_MAX_BYTES)
          .map((s) => `${s} cut at ${OUTPUT_MAX_BYTES} of ${output.bytes[s]} bytes: read the rest with the job tool (id ${job.id}, ${s}Offset ${OUTPUT_MAX_BYTES})`)
        return json({ ...whereOf(node, args.sandbox, job.id), state: status.state, exitCode: status.exitCode, exitStatus: status.exitStatus, signal: status.signal, durationMs: status.durationMs, stdout: output.stdout.toString('utf8'), stderr: output.stderr.toString('utf8'), ...(notes.length > 0 ? { note: notes.join('; ') } : {}) })
      } finally {
        call.signal.removeEventListener('abort', kill)
      }
    },
  }),

  start: tool({
    description: 'Starts a shell command on a node (or in a sandbox) as a job that outlives the call, and gives its id at once; follow it with the job tool, end it with kill.',
    input: { command: z.string().min(1).max(256 * 1024).describe('a shell command line'), node: NodeName, sandbox: SandboxName, env: Env, timeout: Timeout, stdin: Stdin },
    needs: 'run',
    annotations: { destructiveHint: true, openWorldHint: true },
    async call (args, { herds }) {
      const { node, job } = await startJob(herds, args)
      return json({ ...whereOf(node, args.sandbox, job.id), state: (await job.state()).state })
    },
  }),

  job: tool({
    description: `A job's state and its output from the offsets given (at most ${OUTPUT_MAX_BYTES} bytes of each); wait (seconds, at most ${JOB_WAIT_MAX_S}) waits for its end first. The answer gives the offsets to read on from.`,
    input: {
      id: JobId,
      node: NodeName,
      sandbox: SandboxName,
      stdoutOffset: z.number().int().min(0).optional().describe('bytes of stdout already read'),
      stderrOffset: z.number().int().min(0).optional().describe('bytes of stderr already read'),
      wait: z.number().min(0).max(JOB_WAIT_MAX_S).optional().describe('seconds to wait for the job to end'),
    },
    needs: 'read',
    annotations: { readOnlyHint: true },
    async call (args, { herds, signal }) {
      const node = await nodeOf(herds, args.node)
      const job = node.job(args.id, { sandbox: args.sandbox })
      let state = await ofJob(whereOf(node, args.sandbox, job.id), job.state())
      for (const until = Date.now() + (args.wait ?? 0) * 1000; isRunning(state) && Date.now() < until && !signal.aborted;) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(250, until - Date.now())))
        state = await job.state()
      }
      const out: Record<string, unknown> = { ...whereOf(node, args.sandbox, job.id), state: state.state, exitCode: state.exitCode, signal: state.signal, durationMs: state.durationMs, error: state.error }
      for (const stream of ['stdout', 'stderr'] as const) {
        const from = args[`${stream}Offset`] ?? 0
        // A running job's output waits past what there is so far: take what comes within a moment.
        const got = await herds.files.readAt(`${job.dir}/${stream}`, from, OUTPUT_MAX_BYTES + 1, { waitMs: isRunning(state) ? LIVE_WAIT_MS : undefined })
        out[stream] = cut(got).text
        out[`${stream}Offset`] = from + Math.min(got.length, OUTPUT_MAX_BYTES)
        if (got.length > OUTPUT_MAX_BYTES) out[`${stream}More`] = true
      }
      return json(out)
    },
  }),

  kill: tool({
    description: 'Sends a signal to a job\'s whole process group (TERM by default; KILL follows 3 s later).',
    input: { id: JobId, node: NodeName, sandbox: SandboxName, signal: z.string().regex(/^(SIG)?[A-Z0-9]{2,8}$/, 'a signal name such as TERM, INT or KILL').optional() },
    needs: 'run',
    annotations: { destructiveHint: true },
    async call (args, { herds }) {
      const node = await nodeOf(herds, args.node)
      const job = node.job(args.id, { sandbox: args.sandbox })
      const signal = (args.signal ?? 'TERM').replace(/^SIG/, '')
      await ofJob(whereOf(node, args.sandbox, job.id), job.kill(signal))
      return json({ ...whereOf(node, args.sandbox, job.id), sent: signal })
    },
  }),

  sandbox_create: tool({
    description: 'Makes a sandbox on a node (or keeps the one of that name): a workspace of its own, with its own jobs, fenced from the rest of the machine. config sets config.json (see /.herds/catalog/schemas/sandbox-config.json). Run in it with the sandbox argument of run and start; its files are at /nodes/<node>/sandboxes/<name>/workspace.',
    input: { name: z.string().min(1).max(64).describe('the sandbox\'s name'), node: NodeName, config: z.record(z.string(), z.unknown()).optional().describe('its config.json') },
    needs: 'run',
    annotations: { destructiveHint: false, idempotentHint: true },
    async call (args, { herds }) {
      const node = await nodeOf(herds, args.node)
      const sandbox = await node.sandbox(args.name, args.config)
      return json({ node: node.name, sandbox: sandbox.name, workspace: sandbox.root, status: await sandbox.status() })
    },
  }),

  sandbox_remove: tool({
    description: 'Removes a sandbox: its jobs end and its files go.',
    input: { name: z.string().min(1).max(64).describe('the sandbox\'s name'), node: NodeName },
    needs: 'run',
    annotations: { destructiveHint: true },
    async call (args, { herds }) {
      const node = await nodeOf(herds, args.node)
      checkName(args.name, 'sandbox')
      await herds.files.rmdir(`${node.path}/sandboxes/${args.name}`)
      return json({ node: node.name, sandbox: args.name, removed: true })
    },
  }),
}

/** How long `job` waits for a running job's new output. */
const LIVE_WAIT_MS = 200

const isRunning = (state: Record<string, unknown>): boolean => state.state === 'running' || state.state === 'idle'
