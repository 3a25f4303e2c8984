/**
 * A terminal job on this terminal, as `ssh host` gives one: raw mode while
 * attached, the size sent at the start and on every SIGWINCH, keystrokes
 * (Ctrl-C, Ctrl-Z, Ctrl-D among them) sent as bytes for the remote terminal to
 * act on, and this terminal restored on every way out. The job runs on when
 * this client goes away; `herds shell --attach ID` takes it up again.
 */
import type { HerdsNode, Job } from '../mount/sdk/index.js'
import { HerdsError, toHerdsError } from '../tree/errno.js'
import { TtySchema, type Tty } from '../venoms/run/record.js'

/** Output shown again on --attach: the last this many bytes, from a line's start. */
export const REPLAY_BYTES = 64 * 1024

/** How often the node is asked whether it is still online, and how many failed asks in a row mean the host is gone. */
const WATCH_MS = 1000
const WATCH_FAILURES = 3

/** Keystrokes read here and not yet taken by the node, at most; past it this terminal is read no more until they are. */
const MAX_UNSENT = 1024 * 1024

/** This terminal's size and TERM, for the job's terminal; 24×80 when stdout is no terminal. */
export function localTty (): Tty {
  const term = TtySchema.shape.term.safeParse(process.env.TERM)
  return TtySchema.parse({
    rows: clamp(process.stdout.isTTY ? process.stdout.rows : 24),
    cols: clamp(process.stdout.isTTY ? process.stdout.columns : 80),
    term: term.success ? term.data : 'xterm-256color',
  })
}

const clamp = (n: number | undefined): number => Math.min(1000, Math.max(1, n || 24))

/**
 * Output drawn again on --attach, without what would make this terminal act
 * rather than draw: OSC strings (titles, the clipboard, colours asked for) and
 * queries whose answers would arrive as keystrokes (cursor position, device
 * attributes, modes, window reports).
 */
export function replayable (bytes: Buffer): Buffer {
  const text = bytes.toString('latin1')
    .replace(/\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?/g, '')
    .replace(/\x1b\[[?>=]?[0-9;]*(?:\$p|[nct])/g, '')
  return Buffer.from(text, 'latin1')
}

/** What a program on the remote terminal may have turned on that would outlive the session here: mouse reports, bracketed paste, a hidden cursor, application keys. */
const MODES_OFF = '\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?2004l\x1b[?1l\x1b>\x1b[?25h\x1b[0m'
const ALT_SCREEN = /\x1b\[\?(?:1049|1047|47)([hl])/g

/**
 * Attaches this terminal to a running terminal job until it ends; resolves
 * with its exit status, or 255 (as ssh) when the host or the node went away,
 * after a line saying so and how to attach again.
 */
export async function attachTerminal (node: HerdsNode, job: Job, opts: { replay?: boolean } = {}): Promise<number> {
  const stdin = process.stdin
  const raw = stdin.isTTY
  // Restored however this ends: an error, a signal, process.exit anywhere.
  const restore = (): void => { if (raw && stdin.isTTY) stdin.setRawMode(false) }
  // Whether the remote program is on the alternate screen, so a session cut short can leave it.
  let altScreen = false
  const resetModes = (): void => {
    if (!process.stdout.isTTY) return
    process.stdout.write(MODES_OFF + (altScreen ? '\x1b[?1049l' : ''))
  }
  process.once('exit', restore)
  const detach = (signal: NodeJS.Signals): void => {
    restore()
    resetModes()
    process.stderr.write(`\r\nherds: detached (${signal}); job ${job.id} runs on: herds shell --attach ${job.id}${node.name ? ` --node ${node.name}` : ''}\r\n`)
    process.exit(128 + (signal === 'SIGHUP' ? 1 : 15))
  }
  const onHup = (): void => detach('SIGHUP')
  const onTerm = (): void => detach('SIGTERM')
  process.on('SIGHUP', onHup)
  process.on('SIGTERM', onTerm)
  const keys = await job.openStdin()
  let unsent = 0
  let sending = Promise.resolve()
  const onKeys = (chunk: Buffer): void => {
    unsent += chunk.length
    if (unsent > MAX_UNSENT) stdin.pause()
    // A failed write is not reported here: the output's stream fails as well, and says why.
    sending = sending.then(() => keys.write(chunk)).catch(() => {}).finally(() => {
      unsent -= chunk.length
      if (unsent <= MAX_UNSENT && stdin.isPaused()) stdin.resume()
    })
  }
  const onEnd = (): void => { sending = sending.then(() => job.end()).catch(() => {}) }
  // A read waits for a node that went away (it may come back within a minute): ask the host, to say so at once.
  const gone = new AbortController()
  let failures = 0
  const watch = setInterval(() => {
    node.status().then((status) => {
      failures = 0
      if (status.online === false) gone.abort(new HerdsError('EHOSTDOWN', `node ${node.name} went away`))
    }, (err: unknown) => {
      if (++failures >= WATCH_FAILURES) gone.abort(new HerdsError('EHOSTDOWN', `lost the host: ${toHerdsError(err).message}`))
    })
  }, WATCH_MS)
  // In line with the keystrokes: what is typed after a resize reaches a terminal of the new size.
  const onResize = (): void => {
    const { rows, cols } = localTty()
    sending = sending.then(() => job.resize(rows, cols)).catch(() => { /* it ended: the stream says so */ })
  }
  try {
    let from = 0
    let replayEnd = 0
    if (opts.replay) {
      const status = await job.state()
      replayEnd = (status.bytes as { stdout?: number } | undefined)?.stdout ?? 0
      from = Math.max(0, replayEnd - REPLAY_BYTES)
      process.stdout.write('\x1b[H\x1b[2J') // a clean screen to draw the recent output on, as tmux attach does
    }
    if (raw) stdin.setRawMode(true)
    stdin.on('data', onKeys)
    stdin.on('end', onEnd)
    process.stdout.on('resize', onResize)
    // The size now: the job may have been started by another terminal, or this one changed meanwhile.
    // The same size as before makes the node signal a redraw all the same.
    if (opts.replay) onResize()
    // The recent output (up to replayEnd) is gathered and drawn once, made safe; then what comes, as it comes.
    let offset = from
    const replay: Buffer[] = []
    const draw = (chunk: Buffer): Promise<void> | undefined => {
      for (const [, on] of chunk.toString('latin1').matchAll(ALT_SCREEN)) altScreen = on === 'h'
      return write(chunk)
    }
    await job.follow('stdout', (chunk) => {
      if (offset >= replayEnd) { offset += chunk.length; return draw(chunk) }
      const take = Math.min(chunk.length, replayEnd - offset)
      replay.push(chunk.subarray(0, take))
      offset += chunk.length
      if (offset < replayEnd) return undefined
      let recent = Buffer.concat(replay)
      if (from > 0) { // from a line's start, not inside an escape sequence
        const nl = recent.indexOf(0x0a)
        recent = nl >= 0 ? recent.subarray(nl + 1) : recent
      }
      const rest = chunk.subarray(take)
      return Promise.all([draw(replayable(recent)), rest.length > 0 ? draw(rest) : undefined]).then(() => {})
    }, { from, signal: gone.signal })
    const result = await job.status()
    return result.exitStatus
  } catch (err) {
    restore()
    resetModes()
    const why = gone.signal.aborted ? (gone.signal.reason as HerdsError).message : await whyGone(node, toHerdsError(err))
    process.stderr.write(`\r\nherds: ${why}; if job ${job.id} still runs there: herds shell --attach ${job.id} --node ${node.name}\r\n`)
    return 255
  } finally {
    clearInterval(watch)
    stdin.off('data', onKeys)
    stdin.off('end', onEnd)
    process.stdout.off('resize', onResize)
    process.off('SIGHUP', onHup)
    process.off('SIGTERM', onTerm)
    restore()
    stdin.pause()
    await keys.close().catch(() => {})
  }
}

/** Writes to this terminal; resolves when it has taken the bytes, so a slow terminal slows the reads. */
function write (chunk: Buffer): Promise<void> | undefined {
  if (process.stdout.write(chunk)) return undefined
  return new Promise((resolve) => process.stdout.once('drain', resolve))
}

/** Says in words what ended the session early: the node gone, or this machine's link to the host. */
async function whyGone (node: HerdsNode, err: HerdsError): Promise<string> {
  if (err.code !== 'EHOSTDOWN') return err.message
  const online = await node.status().then((s) => s.online !== false, () => undefined)
  if (online === undefined) return `lost the host: ${err.message}`
  return online ? err.message : `node ${node.name} went away`
}
