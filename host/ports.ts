/**
 * Exposed ports (DESIGN §11): `mkdir nodes/<n>/ports/<port>` (or
 * `sandboxes/<s>/ports/<port>`) has the host serve that server over HTTP at
 * <host>/nodes/<n>/ports/<port>/, behind a run token unless an admin made it
 * public (.herds/control/ports/create). Kept in the host's lmdb across
 * restarts; what passes through is counted in memory.
 */
import type { RootDatabase } from 'lmdb'
import { z } from 'zod'
import { HerdsError } from '../tree/errno.js'
import { SafeName } from '../tree/wire.js'

/** Ports exposed at once through one host, at most. */
export const MAX_EXPOSED = 1024

/** What .herds/control/ports/create takes. */
export const PortRequestSchema = z.object({
  node: SafeName.describe('the node the server runs on'),
  sandbox: SafeName.optional().describe('the sandbox of that node whose port it is (absent: the node\'s own)'),
  port: z.number().int().min(1).max(65535).describe('the server\'s port on the node (127.0.0.1 there)'),
  public: z.boolean().default(false).describe('served to anyone, with no token: only an admin may make one'),
}).strict()
export type PortRequest = z.infer<typeof PortRequestSchema>

const ExposureSchema = PortRequestSchema.extend({ sandbox: SafeName.nullable(), createdAt: z.string(), createdBy: z.string().nullable() })
export type Exposure = z.infer<typeof ExposureSchema>

/** What status.json counts, since the host started. */
export interface Traffic { open: number, requests: number, bytesIn: number, bytesOut: number, errors: number, lastError: string | null }

/** The URL path an exposure is served at: its namespace path, so the one names the other. */
export function exposurePath (e: { node: string, sandbox: string | null, port: number }): string {
  return e.sandbox ? `/nodes/${e.node}/sandboxes/${e.sandbox}/ports/${e.port}` : `/nodes/${e.node}/ports/${e.port}`
}

const keyOf = (node: string, sandbox: string | null, port: number): string => `port:${node}/${sandbox ?? ''}/${port}`

export class Exposures {
  private readonly db: RootDatabase
  private readonly traffic = new Map<string, Traffic>()
  /** Told when an exposure goes, so its open connections are closed. */
  onRemove: (e: Exposure) => void = () => {}

  constructor (db: RootDatabase) {
    this.db = db
  }

  all (): Exposure[] {
    const found: Exposure[] = []
    for (const { value } of this.db.getRange({ start: 'port:', end: 'port:\uffff' })) {
      const parsed = ExposureSchema.safeParse(value)
      if (parsed.success) found.push(parsed.data)
    }
    return found
  }

  get (node: string, sandbox: string | null, port: number): Exposure | undefined {
    const parsed = ExposureSchema.safeParse(this.db.get(keyOf(node, sandbox, port)))
    return parsed.success ? parsed.data : undefined
  }

  /** The exposures of one node (or of one of its sandboxes). */
  of (node: string, sandbox: string | null): Exposure[] {
    return this.all().filter((e) => e.node === node && e.sandbox === sandbox)
  }

  async add (request: PortRequest, createdBy: string | null): Promise<Exposure> {
    const sandbox = request.sandbox ?? null
    if (this.get(request.node, sandbox, request.port)) throw new HerdsError('EEXIST', `${exposurePath({ ...request, sandbox })} is exposed already (rmdir it first to change it)`)
    if (this.all().length >= MAX_EXPOSED) throw new HerdsError('ENOSPC', `${MAX_EXPOSED} ports are exposed on this host already; remove one first`)
    const exposure: Exposure = { ...request, sandbox, createdAt: new Date().toISOString(), createdBy }
    await this.db.put(keyOf(request.node, sandbox, request.port), exposure)
    return exposure
  }

  async remove (node: string, sandbox: string | null, port: number): Promise<void> {
    const exposure = this.get(node, sandbox, port)
    if (!exposure) throw new HerdsError('ENOENT', `${exposurePath({ node, sandbox, port })} is not exposed`)
    await this.db.remove(keyOf(node, sandbox, port))
    this.traffic.delete(keyOf(node, sandbox, port))
    this.onRemove(exposure)
  }

  /** A sandbox was removed: its exposures go with it, so a new sandbox of its name starts with none. */
  async forgetSandbox (node: string, sandbox: string): Promise<void> {
    for (const e of this.of(node, sandbox)) await this.remove(node, sandbox, e.port)
  }

  /** A node was forgotten: its exposures, and its sandboxes', go with it. */
  async forgetNode (node: string): Promise<void> {
    for (const e of this.all().filter((one) => one.node === node)) await this.remove(node, e.sandbox, e.port)
  }

  /** The counters of one exposure, made at first use. */
  trafficOf (e: Exposure): Traffic {
    const key = keyOf(e.node, e.sandbox, e.port)
    let counts = this.traffic.get(key)
    if (!counts) this.traffic.set(key, counts = { open: 0, requests: 0, bytesIn: 0, bytesOut: 0, errors: 0, lastError: null })
    return counts
  }
}
