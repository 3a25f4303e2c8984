/**
 * Tokens: who may connect, and what they may do (DESIGN §8). A token is a
 * random secret shown once; the host keeps only its SHA-256 in lmdb, so a copy
 * of the database gives no one a way in. Scopes: read < run < admin; a `node`
 * token lets one node, of one name, register.
 */
import { createHash, randomBytes } from 'node:crypto'
import type { RootDatabase } from 'lmdb'
import { z } from 'zod'
import { HerdsError } from '../tree/errno.js'
import { SafeName } from '../tree/wire.js'

export const ScopeSchema = z.enum(['read', 'run', 'admin', 'node'])
export type Scope = z.infer<typeof ScopeSchema>

/** What a person writes to /.herds/control/tokens/create. */
export const TokenRequestSchema = z.object({
  name: SafeName.describe('the token\'s name: how it is listed, audited and revoked'),
  scope: ScopeSchema.describe('read: read-only namespace; run: also exec, sandboxes, volumes, exports; admin: also /.herds/control; node: a node registering under `node`'),
  node: SafeName.optional().describe('for scope "node": the one node name this token may register as'),
  expiresAt: z.iso.datetime({ offset: true }).optional().describe('when the token stops working (ISO 8601); absent: never'),
}).strict().refine((t) => (t.scope === 'node') === (t.node !== undefined), {
  message: 'a "node" scope needs "node" (the node\'s name), and only it may have one',
  path: ['node'],
})
export type TokenRequest = z.infer<typeof TokenRequestSchema>

const TokenRecordSchema = z.object({
  name: SafeName,
  scope: ScopeSchema,
  node: SafeName.optional(),
  createdAt: z.string(),
  expiresAt: z.string().optional(),
  hash: z.string(),
})
export type TokenRecord = z.infer<typeof TokenRecordSchema>

/** What info.json shows of a token: everything but its hash. */
export type TokenInfo = Omit<TokenRecord, 'hash'>

/** Secrets start with this, so a leaked one is easy to recognise (and to grep for). */
const PREFIX = 'herds_'

const hashOf = (secret: string): string => createHash('sha256').update(secret).digest('hex')

export function tokenInfo (record: TokenRecord): TokenInfo {
  const { hash: _hash, ...info } = record
  return info
}

/** When a token stops working (ms since the epoch): its expiry, or never (Infinity). */
export function endOf (record: TokenRecord): number {
  return record.expiresAt === undefined ? Infinity : Date.parse(record.expiresAt)
}

/** setTimeout's longest wait; a later time is waited for in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** Calls `act` once `at` (ms since the epoch) has come; never for Infinity. Gives what cancels it. */
export function atTime (at: number, act: () => void): () => void {
  let timer: NodeJS.Timeout | undefined
  const wait = (): void => {
    const left = at - Date.now()
    if (left <= 0) return act()
    if (Number.isFinite(left)) { timer = setTimeout(wait, Math.min(left, MAX_TIMER_MS)); timer.unref() }
  }
  wait()
  return () => clearTimeout(timer)
}

/** Has this token's time run out? */
export function expired (record: TokenRecord, now = Date.now()): boolean {
  return record.expiresAt !== undefined && Date.parse(record.expiresAt) <= now
}

export class TokenStore {
  private readonly db: RootDatabase

  constructor (db: RootDatabase) {
    this.db = db
  }

  /** Makes a new token; EEXIST when the name is taken. Returns the secret, which is kept nowhere. */
  async create (request: TokenRequest): Promise<{ record: TokenRecord, secret: string }> {
    if (this.get(request.name)) throw new HerdsError('EEXIST', `a token named "${request.name}" exists already (revoke it first: rmdir tokens/${request.name})`)
    return this.put(request)
  }

  /** Makes a token, replacing one of the same name (whose secret stops working at once). */
  async put (request: TokenRequest): Promise<{ record: TokenRecord, secret: string }> {
    if (request.expiresAt && Date.parse(request.expiresAt) <= Date.now()) throw new HerdsError('EINVAL', `expiresAt: ${request.expiresAt} has passed`)
    const secret = PREFIX + randomBytes(32).toString('base64url')
    const record: TokenRecord = { ...request, createdAt: new Date().toISOString(), hash: hashOf(secret) }
    await this.db.transaction(() => {
      const old = this.get(request.name)
      if (old) this.db.remove(`hash:${old.hash}`)
      this.db.put(`token:${record.name}`, record)
      this.db.put(`hash:${record.hash}`, record.name)
    })
    return { record, secret }
  }

  get (name: string): TokenRecord | undefined {
    const parsed = TokenRecordSchema.safeParse(this.db.get(`token:${name}`))
    return parsed.success ? parsed.data : undefined
  }

  /** The token a secret belongs to, if it is known and not expired. */
  verify (secret: string): TokenRecord | undefined {
    if (!secret.startsWith(PREFIX)) return undefined
    const name = this.db.get(`hash:${hashOf(secret)}`) as string | undefined
    const record = name === undefined ? undefined : this.get(name)
    return record && !expired(record) ? record : undefined
  }

  list (): TokenRecord[] {
    const records: TokenRecord[] = []
    for (const { value } of this.db.getRange({ start: 'token:', end: 'token:\uffff' })) {
      const parsed = TokenRecordSchema.safeParse(value)
      if (parsed.success) records.push(parsed.data)
    }
    return records
  }

  /** Deletes a token; ENOENT when there is none of that name. */
  async revoke (name: string): Promise<TokenRecord> {
    const record = this.get(name)
    if (!record) throw new HerdsError('ENOENT', `no token named "${name}"`)
    await this.db.transaction(() => {
      this.db.remove(`token:${name}`)
      this.db.remove(`hash:${record.hash}`)
    })
    return record
  }
}

/** Reads the secret from an Authorization header ("Bearer <token>"). */
export function bearer (header: string | undefined): string | undefined {
  const match = header?.match(/^Bearer\s+(\S+)\s*$/i)
  return match?.[1]
}
