/** What a node says about itself: info.json (fixed) and its live metrics. */
import os from 'node:os'
import type { NodeInfo } from '../tree/wire.js'
import { VERSION } from '../tree/version.js'
import { nodeImages } from './images.js'

/** The default node name: the short hostname, made safe. */
export function defaultNodeName (): string {
  const short = os.hostname().split('.')[0].replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[.-]+/, '')
  return short.slice(0, 64) || 'node'
}

export function nodeInfo (name: string): NodeInfo {
  return {
    name,
    hostname: os.hostname(),
    os: os.platform(),
    arch: os.arch(),
    release: os.release(),
    cpus: os.cpus().length,
    memory: os.totalmem(),
    version: VERSION,
    images: nodeImages(),
  }
}

/** Load and memory, for status.json. */
export function nodeMetrics (runningJobs: number): { load: number[], freeMemory: number, runningJobs: number } {
  return { load: os.loadavg(), freeMemory: os.freemem(), runningJobs }
}
