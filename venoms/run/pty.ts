/**
 * Pseudo-terminals for terminal jobs, from @lydell/node-pty (node-pty with
 * prebuilt binaries for Linux and macOS, x64 and arm64, as npm packages: no
 * compiler or header download at install time). Loaded at the first terminal
 * job, so a node whose platform has no binary still runs plain jobs and says
 * why terminals are off.
 */
import { writeSync } from 'node:fs'
import { createRequire } from 'node:module'
import { HerdsError } from '../../tree/errno.js'
import { hasFileCalls, setNonBlocking } from '../../tree/native.js'

/** What a terminal job asks of its pseudo-terminal. */
export interface TerminalSize { rows: number, cols: number }

export interface SpawnTerminal extends TerminalSize {
  file: string
  args: string[]
  cwd: string
  env: Record<string, string>
  /** TERM, and the terminal's name. */
  term: string
}

/** A process on a pseudo-terminal: its bytes out, keystrokes in. */
export interface Terminal {
  readonly pid: number
  onData (listener: (data: Buffer) => void): void
  /** Once the process has exited and the terminal's output has been read to its end. */
  onExit (listener: (end: { exitCode: number, signal: number }) => void): void
  write (data: Buffer): void
  /** Bytes written that the terminal has not taken yet. */
  pending (): number
  resize (size: TerminalSize): void
  /** Closes the master side: the terminal hangs up (SIGHUP to whoever still holds it). */
  close (): void
}

interface NodePty {
  spawn (file: string, args: string[], opts: Record<string, unknown>): {
    pid: number
    onData (listener: (data: Buffer | string) => void): unknown
    onExit (listener: (end: { exitCode: number, signal?: number }) => void): unknown
    write (data: Buffer | string): void
    resize (cols: number, rows: number): void
    destroy? (): void
    _socket?: { destroy (): void, once (event: 'close', listener: () => void): unknown }
    /** The master side's descriptor (node-pty's own name for it). */
    _fd?: number
  }
}

let loaded: NodePty | HerdsError | undefined

/** node-pty, or ENOSYS saying why terminals are off on this node. */
function nodePty (): NodePty {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)('@lydell/node-pty') as NodePty
      // Writes to a terminal must never wait (spawnTerminal): that takes the addon's nonblock.
      if (!hasFileCalls()) throw new Error('tree/native is not built (npm run setup; it needs a C compiler)')
    } catch (err) {
      const why = (err as Error).message.split('\n')[0]
      loaded = new HerdsError('ENOSYS', `terminals are off on this node: ${why}; plain jobs still run`)
    }
  }
  if (loaded instanceof HerdsError) throw loaded
  return loaded
}

/** Why this node cannot give jobs a terminal, or null when it can. */
export function terminalsOff (): string | null {
  try {
    nodePty()
    return null
  } catch (err) {
    return (err as Error).message
  }
}

/** How often keystrokes the terminal had no room for are offered again. */
const RETRY_MS = 20
/** Keystrokes smaller than this are joined to the one queued before them, so a flood of 1-byte writes is not a flood of buffers. */
const JOIN_BELOW = 4096
/** Terminals open on this node at once, at most: each is one of the machine's ptys (kernel.pty.max, often 4096, for every user). */
export const MAX_TERMINALS = 256

let terminalsOpen = 0

/**
 * Starts `file` on a new pseudo-terminal, as the leader of its own session
 * (so its pid is its process group). Keystrokes are written here, not by
 * node-pty: its master side is in blocking mode, and a write to a program that
 * reads nothing would stop the node. Non-blocking, what the terminal has no
 * room for waits in a queue, which the caller bounds by `pending()`.
 */
export function spawnTerminal (opts: SpawnTerminal, max = MAX_TERMINALS): Terminal {
  if (terminalsOpen >= max) throw new HerdsError('EAGAIN', `${max} terminal jobs run on this node already: end one first`)
  const pty = nodePty().spawn(opts.file, opts.args, {
    name: opts.term,
    rows: opts.rows,
    cols: opts.cols,
    cwd: opts.cwd,
    env: opts.env,
    encoding: null, // bytes as they come: a character split across two reads stays whole on disk
  })
  const fd = pty._fd
  try {
    if (fd === undefined || !pty._socket) throw new HerdsError('ENOSYS', 'this node-pty does not say which descriptor is its terminal')
    setNonBlocking(fd)
  } catch (err) {
    pty._socket?.destroy()
    try { process.kill(-pty.pid, 'SIGKILL') } catch { /* gone */ }
    throw err
  }
  terminalsOpen++
  // Once node-pty has closed the descriptor (the terminal hung up), its number may be another file's: never used again.
  let hungUp = false
  pty._socket.once('close', () => { if (!hungUp) { hungUp = true; terminalsOpen-- } })
  let queue: Buffer[] = []
  let queued = 0
  let retry: NodeJS.Timeout | undefined
  const flush = (): void => {
    if (hungUp) { queue = []; queued = 0; return }
    while (queue.length > 0) {
      let wrote: number
      try {
        wrote = writeSync(fd, queue[0])
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') break
        queue = [] // EIO: the terminal has hung up; no one is left to read them
        queued = 0
        return
      }
      queued -= wrote
      if (wrote < queue[0].length) { queue[0] = queue[0].subarray(wrote); break }
      queue.shift()
    }
    if (queue.length > 0) retry ??= setTimeout(() => { retry = undefined; flush() }, RETRY_MS)
  }
  pty.onExit(() => { clearTimeout(retry); queue = []; queued = 0 })
  return {
    pid: pty.pid,
    onData: (listener) => { pty.onData((data) => listener(typeof data === 'string' ? Buffer.from(data) : data)) },
    onExit: (listener) => { pty.onExit((end) => listener({ exitCode: end.exitCode, signal: end.signal ?? 0 })) },
    write: (data) => {
      if (hungUp) throw new HerdsError('EPIPE', 'the terminal has hung up: nothing reads what is typed at it')
      const last = queue.at(-1)
      if (last && queue.length > 1 && last.length + data.length < JOIN_BELOW) queue[queue.length - 1] = Buffer.concat([last, data])
      else queue.push(data)
      queued += data.length
      // While a retry is due the terminal is full: it will be offered then, not tried (and refused) at every keystroke.
      if (!retry) flush()
    },
    pending: () => queued,
    resize: (size) => { if (!hungUp) pty.resize(size.cols, size.rows) },
    close: () => { if (pty.destroy) pty.destroy(); else pty._socket?.destroy() },
  }
}
