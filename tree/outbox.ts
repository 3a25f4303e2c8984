/**
 * What waits to go out on one connection. Requests wait here, in order,
 * while the socket already holds more than SEND_HIGH_WATER bytes the other
 * side has not taken, so the socket's own buffer stays small and a ping,
 * a pong or a cancel is never stuck behind megabytes of writes. Change
 * notices that cannot go at once are gathered into one (a flood of them
 * folds into their folders), so a reader that falls behind costs a bounded set
 * of paths, not a queue of frames.
 */
import { HerdsError } from './errno.js'
import { Gathered, type Changed } from './changed.js'
import type { WireSocket } from './link.js'
import { MAX_CHANGED, type Frame } from './wire.js'

/** Past this many bytes in the socket's buffer, requests wait in the outbox. */
export const SEND_HIGH_WATER = 4 * 1024 * 1024

/** The most bytes of writes the outbox holds; a write past it fails with EAGAIN. */
export const MAX_OUTBOX_BYTES = 64 * 1024 * 1024

/** How often a waiting outbox looks at the socket again (ws has no drain event of its own). */
const PUMP_MS = 5

interface Waiting { frame: Frame, bytes: number }

export class Outbox {
  private readonly socket: WireSocket
  private readonly write: (frame: Frame) => void
  /** Requests not sent yet, by id, oldest first. */
  private readonly requests = new Map<number, Waiting>()
  private bytes = 0
  private changed: Gathered | undefined
  private timer: NodeJS.Timeout | undefined

  /** `write` puts a frame on the socket at once. */
  constructor (socket: WireSocket, write: (frame: Frame) => void) {
    this.socket = socket
    this.write = write
  }

  private get full (): boolean {
    return this.socket.bufferedAmount >= SEND_HIGH_WATER
  }

  /** Sends request `id` now, or after those already waiting; `bytes` is what it carries (a write's data). */
  request (id: number, frame: Frame, bytes: number): void {
    if (this.requests.size === 0 && !this.full) return this.write(frame)
    if (bytes > 0 && this.bytes + bytes > MAX_OUTBOX_BYTES) {
      throw new HerdsError('EAGAIN', 'too much data is waiting to go to the other side; try again')
    }
    this.requests.set(id, { frame, bytes })
    this.bytes += bytes
    this.schedule()
  }

  /** Takes back request `id` if it has not gone yet; true if it had not. */
  withdraw (id: number): boolean {
    const waiting = this.requests.get(id)
    if (!waiting) return false
    this.requests.delete(id)
    this.bytes -= waiting.bytes
    return true
  }

  /** Sends a change notice now, or gathers it into the one that waits (folded to its folders past MAX_CHANGED paths). */
  notice (changes: Changed): void {
    if (!this.changed && !this.full) return this.write({ t: 'changed', ...changes })
    this.changed ??= new Gathered()
    this.changed.add(changes)
    this.changed.fold(MAX_CHANGED)
    this.schedule()
  }

  /** Drops everything waiting (the connection closed; its calls have failed already). */
  clear (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.requests.clear()
    this.bytes = 0
    this.changed = undefined
  }

  private schedule (): void {
    this.timer ??= setTimeout(() => this.pump(), PUMP_MS)
  }

  private pump (): void {
    this.timer = undefined
    if (this.socket.readyState !== this.socket.OPEN) return this.clear()
    if (this.changed && !this.full) {
      const changes = this.changed.take(MAX_CHANGED)
      this.changed = undefined
      this.write({ t: 'changed', ...changes })
    }
    for (const [id, waiting] of this.requests) {
      if (this.full) break
      this.requests.delete(id)
      this.bytes -= waiting.bytes
      this.write(waiting.frame)
    }
    if (this.requests.size > 0 || this.changed) this.schedule()
  }
}
