/**
 * Pseudo-terminals for terminal jobs, from @lydell/node-pty (node-pty with
 * prebuilt binaries for Linux and macOS, x64 and arm64, as npm packages: no
 * compiler or header download at install time). Loaded at the first terminal
 * job, so a node whose platform has no binary still runs plain jobs and says
 * why terminals are off.
 */
import { createRequire } from 'node:module'
import { HerdsError } from '../../tree/errno.js'

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
    _socket?: { writableLength?: number, destroy (): void }
  }
}

let loaded: NodePty | HerdsError | undefined

/** node-pty, or ENOSYS saying why terminals are off on this node. */
function nodePty (): NodePty {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)('@lydell/node-pty') as NodePty
    } catch (err) {
      const why = (err as Error).message.split('\n')[0]
      loaded = new HerdsError('ENOSYS', `terminals are off on this node: @lydell/node-pty did not load (${why}); plain jobs still run`)
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

/** Starts `file` on a new pseudo-terminal, as the leader of its own session (so its pid is its process group). */
export function spawnTerminal (opts: SpawnTerminal): Terminal {
  const pty = nodePty().spawn(opts.file, opts.args, {
    name: opts.term,
    rows: opts.rows,
    cols: opts.cols,
    cwd: opts.cwd,
    env: opts.env,
    encoding: null, // bytes as they come: a character split across two reads stays whole on disk
  })
  return {
    pid: pty.pid,
    onData: (listener) => { pty.onData((data) => listener(typeof data === 'string' ? Buffer.from(data) : data)) },
    onExit: (listener) => { pty.onExit((end) => listener({ exitCode: end.exitCode, signal: end.signal ?? 0 })) },
    write: (data) => pty.write(data),
    // node-pty queues writes in its socket and says nothing of how much: read it there, for the stdin bound.
    pending: () => pty._socket?.writableLength ?? 0,
    resize: (size) => pty.resize(size.cols, size.rows),
    close: () => { if (pty.destroy) pty.destroy(); else pty._socket?.destroy() },
  }
}
