/** How a command reaches a host: its URL, the token, and TLS trust; validated like every flag. */
import { readHostUrl } from './hostfile.js'
import { readAdminToken, readFlagFile, parseFlag, TokenSecret, HostUrl, DEFAULT_PORT } from './options.js'
import type { WireSocket } from '../tree/link.js'

export const TOKEN_OPTION = ['--token <secret>', 'the token to connect with (default: $HERDS_TOKEN, else this machine\'s admin token)'] as const
export const TOKEN_FILE_OPTION = ['--token-file <file>', 'read the token from this file (so it is not in a config file or the process list)'] as const
export const CA_OPTION = ['--ca <file>', 'trust this certificate (PEM) for a wss:// host with a self-signed one'] as const
export const HOST_OPTION = ['--host <url>', 'the host (default: $HERDS_URL, else the host running with this HERDS_HOME, else ws://127.0.0.1:' + DEFAULT_PORT + ')'] as const

export interface AccessFlags { token?: string, tokenFile?: string, ca?: string }
/** How to reach the host; `open` connects in this process (herds up's own node and mount). */
export interface Access { token: string, ca?: Buffer, pinned?: boolean, open?: () => WireSocket }

/** The token and TLS trust to connect with: --token (or --token-file), else $HERDS_TOKEN, else the local admin token. */
export async function accessFrom (opts: AccessFlags): Promise<Access> {
  const fromFile = opts.tokenFile === undefined ? undefined : readFlagFile(opts.tokenFile, '--token-file').toString('utf8').trim()
  const token = opts.token ?? fromFile ?? (process.env.HERDS_TOKEN || undefined) ?? await readAdminToken()
  return { token: parseFlag(TokenSecret, token, '--token', true), ca: opts.ca ? readFlagFile(opts.ca, '--ca') : undefined }
}

/** The host to talk to: --host, else $HERDS_URL, else the host running here (any port), else the local default. */
export function hostFrom (flag: string | undefined): string {
  return parseFlag(HostUrl, flag ?? (process.env.HERDS_URL || readHostUrl() || `ws://127.0.0.1:${DEFAULT_PORT}`), '--host')
}
