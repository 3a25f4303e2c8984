/**
 * Where a running host leaves its URL, so local clients find it on any port:
 * HERDS_HOME/host/url.json with the host's pid, removed when it stops and
 * ignored if that process is gone (a host killed with -9).
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { z } from 'zod'
import { herdsHome } from './options.js'

const HostFile = z.object({ url: z.string(), pid: z.number().int().positive() })

function hostFile (): string {
  return join(herdsHome(), 'host', 'url.json')
}

/** Records this process as the host at `url`; returns what removes the record again. */
export function writeHostUrl (url: string): () => void {
  const file = hostFile()
  writeFileSync(`${file}.${process.pid}`, JSON.stringify({ url, pid: process.pid }) + '\n')
  renameSync(`${file}.${process.pid}`, file) // whole or not at all
  return () => {
    if (readHostFile()?.pid === process.pid) rmSync(file, { force: true })
  }
}

/** The URL of the host running with this HERDS_HOME, if one is. */
export function readHostUrl (): string | undefined {
  const found = readHostFile()
  return found && isAlive(found.pid) ? found.url : undefined
}

function readHostFile (): z.infer<typeof HostFile> | undefined {
  try {
    const parsed = HostFile.safeParse(JSON.parse(readFileSync(hostFile(), 'utf8')))
    return parsed.success ? parsed.data : undefined
  } catch {
    return undefined // none, or half-written by hand: as if there were none
  }
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' // alive, another user's
  }
}
