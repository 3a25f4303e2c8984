/** CLI flags, validated with zod: a bad flag is one clear line, never a stack trace. */
import os from 'node:os'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { z } from 'zod'
import { HerdsError } from '../tree/errno.js'

const PORT_MESSAGE = 'a port is a whole number from 0 to 65535'
export const Port = z.string().regex(/^\d{1,5}$/, PORT_MESSAGE).transform(Number).refine((n) => n <= 65535, PORT_MESSAGE)
import { SafeName } from '../tree/wire.js'
export { SafeName as NodeName }
export const HostUrl = z.string().regex(/^wss?:\/\/[^\s/]+(\/\S*)?$/, 'the host URL looks like ws://127.0.0.1:7077')
export const Dir = z.string().min(1, 'a directory is needed')
export const ListenAddress = z.string().regex(/^[0-9A-Za-z.:-]{1,253}$/, 'an address is an IP address or a host name, e.g. 0.0.0.0')
/** --job-expiry: seconds, more than 0, at most a day; decimals allowed. */
export const JobExpiry = z.string().regex(/^\d+(\.\d+)?$/, 'seconds, a number above 0 (e.g. 600)').transform(Number)
  .refine((s) => s > 0 && s <= 24 * 3600, 'seconds, above 0 and at most 86400 (a day)')
export const TokenSecret = z.string().regex(/^herds_[A-Za-z0-9_-]{20,200}$/, 'a token looks like herds_… (herds token show; or .herds/control/tokens/<name>/secret)')

/** Reads a file a flag names (a certificate, a key); ENOENT in one line. */
export function readFlagFile (path: string, flag: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw new HerdsError('ENOENT', `${flag}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

/** The admin token the local host made (HERDS_HOME/host/admin.token). */
export async function readAdminToken (): Promise<string> {
  const file = join(herdsHome(), 'host', 'admin.token')
  try {
    return (await readFile(file, 'utf8')).trim()
  } catch {
    throw new HerdsError('EACCES', `no token: give --token or set HERDS_TOKEN (no admin token at ${file}; a host started here makes one)`)
  }
}

/** Parses one flag's value or throws a HerdsError naming the flag (and the value, unless it is a secret). */
export function parseFlag<T> (schema: z.ZodType<T>, value: unknown, flag: string, secret = false): T {
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new HerdsError('EINVAL', `${flag}: ${parsed.error.issues[0]?.message ?? 'invalid'}${secret ? '' : ` (got ${JSON.stringify(value)})`}`)
  return parsed.data
}

/** Where Herds keeps its state: $HERDS_HOME, else ~/.herds. */
export function herdsHome (): string {
  return process.env.HERDS_HOME || join(os.homedir(), '.herds')
}

/** The default mountpoint: /Volumes/herds on macOS, ~/herds elsewhere. */
export function defaultMountpoint (): string {
  return process.platform === 'darwin' ? '/Volumes/herds' : join(os.homedir(), 'herds')
}

export const DEFAULT_PORT = 7077

/** --export name=path[:ro]: a directory of this machine shown at nodes/<node>/fs/<name>/. */
export function parseExport (value: string): { name: string, path: string, readOnly: boolean } {
  const match = value.match(/^([^=]+)=(.+?)(:ro)?$/)
  const name = match && SafeName.safeParse(match[1])
  if (!match || !name?.success) throw new HerdsError('EINVAL', `--export: expected name=path or name=path:ro with a name of letters, digits, "_", "-" or "." (got ${JSON.stringify(value)})`)
  const path = resolve(match[2])
  if (!existsSync(path) || !statSync(path).isDirectory()) throw new HerdsError('ENOENT', `--export ${match[1]}: ${path} is not a directory`)
  return { name: match[1], path, readOnly: match[3] === ':ro' }
}

/** Collects repeated --export flags, refusing a name given twice. */
export function collectExports (value: string, previous: Array<ReturnType<typeof parseExport>> = []): Array<ReturnType<typeof parseExport>> {
  const ex = parseExport(value)
  if (previous.some((p) => p.name === ex.name)) throw new HerdsError('EEXIST', `--export: the name ${ex.name} is given twice`)
  return [...previous, ex]
}
