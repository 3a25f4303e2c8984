/** CLI flags, validated with zod: a bad flag is one clear line, never a stack trace. */
import os from 'node:os'
import { join } from 'node:path'
import { z } from 'zod'
import { HerdsError } from '../tree/errno.js'

const PORT_MESSAGE = 'a port is a whole number from 0 to 65535'
export const Port = z.string().regex(/^\d{1,5}$/, PORT_MESSAGE).transform(Number).refine((n) => n <= 65535, PORT_MESSAGE)
export { SafeName as NodeName } from '../tree/wire.js'
export const HostUrl = z.string().regex(/^wss?:\/\/[^\s/]+(\/\S*)?$/, 'the host URL looks like ws://127.0.0.1:7077')
export const Dir = z.string().min(1, 'a directory is needed')

/** Parses one flag's value or throws a HerdsError naming the flag. */
export function parseFlag<T> (schema: z.ZodType<T>, value: unknown, flag: string): T {
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new HerdsError('EINVAL', `${flag}: ${parsed.error.issues[0]?.message ?? 'invalid'} (got ${JSON.stringify(value)})`)
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
