/**
 * The admin token: made on the host's first start and kept, as its secret, in
 * a file only its owner can read (HERDS_HOME/host/admin.token), so
 * `herds token show` and local commands can find it.
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import type { TokenStore } from './tokens.js'

/** The admin token's name in the store. */
export const ADMIN_TOKEN = 'admin'

/** Returns the admin secret; makes a new one if the file is missing or its token is no longer valid. */
export async function ensureAdminToken (file: string, tokens: TokenStore): Promise<string> {
  const kept = await readFile(file, 'utf8').then((s) => s.trim(), () => undefined)
  if (kept && tokens.verify(kept)?.scope === 'admin') return kept
  const { secret } = await tokens.put({ name: ADMIN_TOKEN, scope: 'admin' })
  // A new file, 0600 from its first byte, put in place whole (whatever mode an old one had).
  const fresh = `${file}.${process.pid}.new`
  await writeFile(fresh, secret + '\n', { mode: 0o600, flag: 'wx' })
  await rename(fresh, file)
  return secret
}
