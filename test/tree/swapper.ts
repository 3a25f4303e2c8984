/**
 * An attacker's helper: swaps two names in a folder with renameat2
 * (RENAME_EXCHANGE) as fast as it can, so a folder and a link to somewhere
 * else trade places thousands of times a second, for a bounded time.
 */
import { spawn, type ChildProcess } from 'node:child_process'

/** The swap loop, in Python (ctypes reaches renameat2 without a compiler). */
export const SWAP_SCRIPT = `
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b, seconds = sys.argv[1].encode(), sys.argv[2].encode(), float(sys.argv[3])
AT_FDCWD, RENAME_EXCHANGE = -100, 2
end, swaps = time.time() + seconds, 0
while time.time() < end:
    if libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0:
        swaps += 1
    time.sleep(0.0002)
print(swaps, flush=True)
`

export interface Swapper {
  child: ChildProcess
  /** Resolves with the number of swaps made, when the loop ends. */
  swaps: Promise<number>
}

/** Starts swapping `a` and `b` (paths on this machine) for `seconds`. */
export function startSwapper (a: string, b: string, seconds: number): Swapper {
  const child = spawn('python3', ['-c', SWAP_SCRIPT, a, b, String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout!.on('data', (chunk: Buffer) => { out += chunk.toString() })
  const swaps = new Promise<number>((resolve, reject) => {
    child.on('error', reject)
    child.on('exit', () => resolve(Number(out.trim()) || 0))
  })
  return { child, swaps }
}
