/**
 * The run venom as a synthetic directory (DESIGN §4). The top-level files are
 * the directory's default slot; `new` and `mkdir jobs/<name>` give a client a
 * job of its own at `jobs/<id>/`.
 */
import { constants } from 'node:os'
import { HerdsError } from '../../tree/errno.js'
import { actionFile, jsonFile, textFile, type SynthDir, type SynthFile } from '../../tree/synthetic.js'
import { parseJsonAs } from '../../tree/json.js'
import { checkName } from '../../tree/names.js'
import type { Job } from './job.js'
import { terminalsOff } from './pty.js'
import { STREAMS, TtySchema, type StreamName } from './record.js'
import { RUN_README } from './readme.js'
import type { Runner } from './runner.js'

/** The longest command line `cmd` accepts, and the most a write to `env` or `ctl` may carry. */
export const MAX_CMD_BYTES = 64 * 1024
const MAX_SETTING_BYTES = 64 * 1024

const EMPTY = new Uint8Array(0)

/** Builds the exec/ directory for a runner. */
export function execDir (runner: Runner): SynthDir {
  const current = (): Job | undefined => runner.current
  const noted = (path: string) => (err: HerdsError) => runner.noteError(path, err)
  return {
    kind: 'dir',
    entries: {
      'README.md': textFile(RUN_README),
      cmd: actionFile({
        maxBytes: MAX_CMD_BYTES,
        read: () => (current()?.record.cmd ? current()!.record.cmd + '\n' : ''),
        check: () => runner.checkSlotFree(),
        validate: validateCommand,
        commit: async (data) => { await runner.runInSlot(parseCommand(data)) },
        onRefuse: noted('cmd'),
      }),
      stdin: stdinFile(current, noted('stdin')),
      ctl: ctlFile(current, noted('ctl')),
      ...jobFiles(current),
      env: envFile(() => runner.settings.env, (env) => runner.saveSettings({ ...runner.settings, env }), noted('env')),
      timeout: timeoutFile(() => runner.settings.timeout, (timeout) => runner.saveSettings({ ...runner.settings, timeout }), noted('timeout')),
      error: textFile(() => runner.lastError),
      new: textFile(async () => {
        try {
          return `${(await runner.allocate()).id}\n`
        } catch (err) {
          if (err instanceof HerdsError) runner.noteError('new', err)
          throw err
        }
      }),
      jobs: {
        kind: 'dir',
        list: () => runner.ids(),
        lookup: (id) => {
          const job = runner.get(id)
          return job && jobDir(runner, job)
        },
        mkdir: async (name) => {
          try {
            checkName(name, 'job')
            await runner.allocate(name)
          } catch (err) {
            if (err instanceof HerdsError) runner.noteError(`jobs/${name}`, err)
            throw err
          }
        },
      },
    },
  }
}

/** jobs/<id>/: one job's files. Its `cmd` takes one command, once. */
function jobDir (runner: Runner, job: Job): SynthDir {
  const noted = (name: string) => (err: HerdsError) => runner.noteError(`jobs/${job.id}/${name}`, err)
  return {
    kind: 'dir',
    entries: {
      cmd: actionFile({
        maxBytes: MAX_CMD_BYTES,
        read: () => (job.record.cmd ? job.record.cmd + '\n' : ''),
        check: () => job.checkIdle(),
        validate: validateCommand,
        commit: (data) => runner.run(job, parseCommand(data)),
        onRefuse: noted('cmd'),
      }),
      stdin: stdinFile(() => job, noted('stdin')),
      ctl: ctlFile(() => job, noted('ctl')),
      // This job's own additions to the directory's env and timeout, written before its cmd.
      env: envFile(() => job.preset.env, (env) => { notStarted(job); job.preset.env = env }, noted('env')),
      timeout: timeoutFile(() => job.preset.timeout ?? runner.settings.timeout, (timeout) => { notStarted(job); job.preset.timeout = timeout }, noted('timeout')),
      tty: ttyFile(job, noted('tty')),
      ...jobFiles(() => job),
    },
  }
}

/**
 * `tty`: a JSON object ({"rows":40,"cols":120,"term":"xterm-256color"}, each
 * optional) written before the cmd makes the job a terminal job; read, its
 * terminal now (its size follows ctl "resize"), or nothing for a job on pipes.
 */
function ttyFile (job: Job, onRefuse: (err: HerdsError) => void): SynthFile {
  return actionFile({
    maxBytes: 1024,
    read: () => {
      const tty = job.record.tty ?? job.preset.tty
      return tty ? JSON.stringify(tty) + '\n' : ''
    },
    check: () => notStarted(job),
    commit: (data) => {
      notStarted(job)
      const why = terminalsOff()
      if (why) throw new HerdsError('ENOSYS', why)
      job.preset.tty = parseJsonAs(TtySchema, data.toString('utf8'), 'tty')
    },
    onRefuse,
  })
}

/** Settings of a job can change only before it starts. */
function notStarted (job: Job): void {
  if (job.record.state === 'expired') job.checkIdle()
  if (job.record.state !== 'idle') throw new HerdsError('EBUSY', `job ${job.id} has started; its env, timeout and tty are set before its cmd`)
}

/** `env`: KEY=VALUE lines; `>` replaces them (truncate empties), `>>` adds. */
function envFile (get: () => Record<string, string>, set: (env: Record<string, string>) => Promise<void> | void, onRefuse: (err: HerdsError) => void): SynthFile {
  return actionFile({
    maxBytes: MAX_SETTING_BYTES,
    read: () => Object.entries(get()).map(([k, v]) => `${k}=${v}\n`).join(''),
    validate: (soFar) => { parseEnv(completeLines(soFar)) },
    commit: (data) => set({ ...get(), ...parseEnv(data.toString('utf8')) }),
    truncate: () => set({}),
    onRefuse,
  })
}

/** `timeout`: seconds (0: none). */
function timeoutFile (get: () => number, set: (timeout: number) => Promise<void> | void, onRefuse: (err: HerdsError) => void): SynthFile {
  return actionFile({
    maxBytes: 64,
    read: () => `${get()}\n`,
    validate: (soFar) => { if (soFar.includes(0x0a)) parseTimeout(soFar) },
    commit: (data) => set(parseTimeout(data)),
    onRefuse,
  })
}

/** The files that show one job: its output streams, `status` and `exit`. */
function jobFiles (getJob: () => Job | undefined): Record<string, SynthFile> {
  const files: Record<string, SynthFile> = {
    // With the bytes of output so far, so a client attaching again knows where the recent output starts.
    status: jsonFile(() => {
      const job = getJob()
      return job ? { ...job.record, bytes: job.bytes() } : IDLE
    }),
    exit: {
      kind: 'file',
      mode: 0o444,
      open: () => {
        const job = getJob() // a reader stays with the job it opened, whatever starts next
        return {
          read: async (offset, length, ctx) => {
            if (!job) return EMPTY
            return Buffer.from(`${await job.waitExit(ctx?.signal)}\n`).subarray(offset, offset + length)
          },
        }
      },
    },
  }
  for (const stream of STREAMS) files[stream] = streamFile(getJob, stream)
  return files
}

/** A job's output stream: reads past the end wait for more until the job ends. */
function streamFile (getJob: () => Job | undefined, stream: StreamName): SynthFile {
  return {
    kind: 'file',
    mode: 0o444,
    open: () => {
      const job = getJob()
      return { read: (offset, length, ctx) => job ? job.read(stream, offset, length, ctx?.signal) : EMPTY }
    },
  }
}

/** `stdin`: every write goes to the job's standard input as it comes. */
function stdinFile (getJob: () => Job | undefined, onRefuse: (err: HerdsError) => void): SynthFile {
  return {
    kind: 'file',
    mode: 0o222,
    open: () => {
      const job = getJob()
      return {
        write: async (_offset, data) => {
          try {
            if (!job) throw new HerdsError('EPIPE', 'no job has run here yet')
            return await job.writeStdin(data)
          } catch (err) {
            if (err instanceof HerdsError) onRefuse(err)
            throw err
          }
        },
      }
    },
  }
}

/** `ctl`: "kill [SIGNAL]", "eof" and "resize ROWS COLS", one a line, acted on when the writer closes the file. */
function ctlFile (getJob: () => Job | undefined, onRefuse: (err: HerdsError) => void): SynthFile {
  return actionFile({
    maxBytes: MAX_SETTING_BYTES,
    validate: (soFar) => { parseCtl(completeLines(soFar)) },
    commit: (data) => {
      const job = getJob()
      if (!job) throw new HerdsError('EINVAL', 'no job has run here yet')
      for (const command of parseCtl(data.toString('utf8'))) {
        if (job.record.state === 'idle') throw new HerdsError('EINVAL', `job ${job.id} has not started`)
        if (command.verb === 'resize') { job.resize(command.size); continue } // EINVAL for a job with no terminal, ended or not
        if (!job.running) continue // it ended already: nothing left to kill or close
        if (command.verb === 'kill') job.kill(command.signal)
        else job.closeStdin()
      }
    },
    onRefuse,
  })
}

const IDLE = {
  id: null, state: 'idle', cmd: null, cwd: null, pid: null, exitCode: null, signal: null,
  createdAt: null, startedAt: null, endedAt: null, durationMs: null, timeout: null, truncated: false, error: null, tty: null,
  bytes: { stdout: 0, stderr: 0, output: 0 },
}

/** The lines of what was written so far that are finished (end in a newline). */
function completeLines (soFar: Buffer): string {
  const text = soFar.toString('utf8')
  return text.slice(0, text.lastIndexOf('\n') + 1)
}

/**
 * Refuses, at write time, what can never become a command: NUL bytes, or a
 * finished line with nothing on it (so `echo > cmd` fails where the shell sees it).
 */
function validateCommand (soFar: Buffer): void {
  if (soFar.includes(0)) throw new HerdsError('EINVAL', 'a command may not contain NUL bytes')
  if (soFar.at(-1) === 0x0a && soFar.toString('utf8').trim() === '') {
    throw new HerdsError('EINVAL', 'empty command: write a command line, e.g. echo "make test" > cmd')
  }
}

/** Turns what was written to `cmd` into a command line, or refuses it with EINVAL. */
export function parseCommand (data: Buffer): string {
  validateCommand(data)
  const cmd = data.toString('utf8').replace(/\r?\n$/, '')
  if (cmd.trim() === '') throw new HerdsError('EINVAL', 'empty command: write a command line, e.g. echo "make test" > cmd')
  return cmd
}

/**
 * Parses KEY=VALUE lines (blank lines and # comments skipped). A refusal never
 * quotes the line: it lands in `error`, which read tokens may read, and the
 * line may hold a secret (a password, a line of a key).
 */
export function parseEnv (text: string): Record<string, string> {
  const env: Record<string, string> = {}
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '' || line.startsWith('#')) return
    const match = line.match(/^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/)
    if (!match || match[2].includes('\0')) throw new HerdsError('EINVAL', `env line ${i + 1} is not KEY=VALUE${whyNotEnv(line)}`)
    env[match[1]] = match[2]
  })
  return env
}

/** What is wrong with a refused env line, in words that quote none of it. */
function whyNotEnv (line: string): string {
  if (line.includes('\0')) return ' (it contains a NUL byte)'
  if (/^\s*export\s/.test(line)) return ' (leave out "export")'
  if (!line.includes('=')) return ' (it has no "=")'
  return ' (a KEY is a letter or _ followed by letters, digits or _, right before the "=")'
}

/** Parses `timeout`: seconds, a non-negative number; 0 means none. */
export function parseTimeout (data: Buffer): number {
  const text = data.toString('utf8').trim()
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) > 366 * 24 * 3600) {
    throw new HerdsError('EINVAL', `timeout is seconds, a number from 0 (no limit) up, e.g. echo 30 > timeout; got ${JSON.stringify(text.slice(0, 40))}`)
  }
  return Number(text)
}

type CtlCommand = { verb: 'kill', signal: NodeJS.Signals } | { verb: 'eof' } | { verb: 'resize', size: { rows: number, cols: number } }

/** Parses ctl lines: "kill [SIGNAL]" (name, SIG-name or number; default TERM), "eof" and "resize ROWS COLS". */
export function parseCtl (text: string): CtlCommand[] {
  const commands: CtlCommand[] = []
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/).filter(Boolean)
    if (words.length === 0) continue
    if (words[0] === 'eof' && words.length === 1) { commands.push({ verb: 'eof' }); continue }
    if (words[0] === 'kill' && words.length <= 2) { commands.push({ verb: 'kill', signal: parseSignal(words[1] ?? 'TERM') }); continue }
    if (words[0] === 'resize' && words.length === 3) { commands.push({ verb: 'resize', size: parseSize(words[1], words[2]) }); continue }
    // Not quoted: `error` is for read tokens too, and a stray paste may be a secret.
    throw new HerdsError('EINVAL', 'ctl takes "kill [SIGNAL]", "eof" or "resize ROWS COLS", one a line; a line was none of them')
  }
  return commands
}

/** ROWS and COLS of "resize": whole numbers from 1 to 1000, as tty takes them. */
function parseSize (rows: string, cols: string): { rows: number, cols: number } {
  const size = TtySchema.pick({ rows: true, cols: true }).safeParse({ rows: Number(rows), cols: Number(cols) })
  if (!size.success || !/^\d+$/.test(rows) || !/^\d+$/.test(cols)) throw new HerdsError('EINVAL', 'resize takes ROWS COLS, whole numbers from 1 to 1000, e.g. resize 40 120')
  return { rows: size.data.rows, cols: size.data.cols }
}

function parseSignal (word: string): NodeJS.Signals {
  const signals = constants.signals as Record<string, number>
  const byNumber = /^\d+$/.test(word) ? Object.keys(signals).find((name) => signals[name] === Number(word)) : undefined
  const name = byNumber ?? (word.toUpperCase().startsWith('SIG') ? word.toUpperCase() : 'SIG' + word.toUpperCase())
  // Not quoted, as in parseCtl.
  if (!(name in signals)) throw new HerdsError('EINVAL', 'unknown signal after "kill": use a name such as TERM, INT, KILL, HUP, or its number')
  return name as NodeJS.Signals
}
