/**
 * The run venom as a synthetic directory (DESIGN §4): write `cmd`, read
 * `stdout`, `stderr`, `output`, `status` and `exit`. The top-level files are the
 * directory's default slot; `jobs/<id>/` shows every job.
 */
import { HerdsError } from '../../tree/errno.js'
import { actionFile, jsonFile, textFile, type SynthDir, type SynthFile } from '../../tree/synthetic.js'
import type { Job } from './job.js'
import { STREAMS, type StreamName } from './record.js'
import { RUN_README } from './readme.js'
import type { Runner } from './runner.js'

/** The longest command line `cmd` accepts. */
export const MAX_CMD_BYTES = 64 * 1024

const EMPTY = new Uint8Array(0)

/** Builds the exec/ directory for a runner. */
export function execDir (runner: Runner): SynthDir {
  const current = (): Job | undefined => runner.current
  return {
    kind: 'dir',
    entries: {
      'README.md': textFile(RUN_README),
      cmd: actionFile({
        maxBytes: MAX_CMD_BYTES,
        read: () => (current() ? current()!.record.cmd + '\n' : ''),
        check: () => runner.checkSlotFree(),
        validate: validateCommand,
        commit: async (data) => { await runner.runInSlot(parseCommand(data)) },
      }),
      ...jobFiles(current),
      jobs: {
        kind: 'dir',
        list: () => runner.ids(),
        lookup: (id) => {
          const job = runner.get(id)
          return job && { kind: 'dir', entries: { cmd: textFile(() => job.record.cmd + '\n'), ...jobFiles(() => job) } }
        },
      },
    },
  }
}

/** The files that show one job: its output streams, `status` and `exit`. */
function jobFiles (getJob: () => Job | undefined): Record<string, SynthFile> {
  const files: Record<string, SynthFile> = {
    status: jsonFile(() => getJob()?.record ?? IDLE),
    exit: {
      kind: 'file',
      mode: 0o444,
      open: () => {
        const job = getJob() // a reader stays with the job it opened, whatever starts next
        return {
          read: async (offset, length, ctx) => {
            if (!job) return EMPTY
            await job.waitEnd(ctx?.signal)
            return Buffer.from(`${job.exitStatus()}\n`).subarray(offset, offset + length)
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

const IDLE = {
  id: null, state: 'idle', cmd: null, cwd: null, pid: null, exitCode: null, signal: null,
  startedAt: null, endedAt: null, durationMs: null, error: null,
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
  const text = data.toString('utf8')
  if (text.includes('\0')) throw new HerdsError('EINVAL', 'a command may not contain NUL bytes')
  const cmd = text.replace(/\r?\n$/, '')
  if (cmd.trim() === '') throw new HerdsError('EINVAL', 'empty command: write a command line, e.g. echo "make test" > cmd')
  return cmd
}
