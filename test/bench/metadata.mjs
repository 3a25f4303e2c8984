// The bench's metadata and cache figures: find, ls -lR, grep -r and du over a
// tree of 5,000 files, untar of those files and rm -rf of what was untarred,
// git status in a repository of 1,500 files, and a re-read of a 50 MiB file
// read a moment ago. Each place (the mount, the local disk, sshfs) gets
// the same tree, made on the disk beneath it, so only the way in differs.
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export const TREE_FILES = 5000
export const REPO_FILES = 1500
export const REREAD_MIB = 50
const RUNS = Number(process.env.BENCH_META_RUNS ?? 5)

/** Writes `count` small files under `dir`, 100 to a folder, folders two deep. */
function writeTree (dir, count) {
  for (let i = 0; i < count; i++) {
    const folder = join(dir, `d${Math.floor(i / 500)}`, `s${Math.floor(i / 100) % 5}`)
    if (i % 100 === 0) mkdirSync(folder, { recursive: true })
    writeFileSync(join(folder, `f${i}.txt`), `file ${i}\n`.repeat(1 + i % 20))
  }
}

/**
 * Makes the data in `onDisk` (the disk beneath a place), then the git
 * repository's index through `seen` (the place itself), as a user who clones
 * into the place would have it.
 */
export function prepare (onDisk, seen, scratch) {
  writeTree(join(onDisk, 'tree'), TREE_FILES)
  // The same tarball for every place, read from the local disk: only where it is unpacked differs.
  if (!TARBALL.path) {
    TARBALL.path = join(scratch, 'tree.tar')
    execFileSync('tar', ['cf', TARBALL.path, '-C', onDisk, 'tree'])
  }
  writeTree(join(onDisk, 'repo'), REPO_FILES)
  writeFileSync(join(onDisk, 'big.bin'), Buffer.alloc(REREAD_MIB * 1024 * 1024, 7))
  const git = ['-c', 'user.name=bench', '-c', 'user.email=bench@localhost', '-c', 'init.defaultBranch=main']
  execFileSync('git', [...git, 'init', '-q'], { cwd: join(seen, 'repo') })
  execFileSync('git', [...git, 'add', '-A'], { cwd: join(seen, 'repo') })
  execFileSync('git', [...git, 'commit', '-qm', 'bench'], { cwd: join(seen, 'repo') })
}

/** Milliseconds `script` takes in `cwd`; throws if its output is not `expect` (when given). */
function timeScript (script, cwd, expect) {
  const started = process.hrtime.bigint()
  const out = execFileSync('sh', ['-c', script], { cwd, encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, HERDS_BENCH_TARBALL: TARBALL.path } })
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (expect !== undefined && out.trim() !== expect) throw new Error(`${script} in ${cwd} said ${JSON.stringify(out.slice(0, 200))}, not ${JSON.stringify(expect)}`)
  return ms
}

/** The 5,000 files as a tarball, made once in the bench's own temporary folder on the local disk. */
const TARBALL = { path: '' }

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** The workloads, each as [label, script, expected output]; run in the place's folder. */
export const WORKLOADS = [
  [`find, ${TREE_FILES.toLocaleString('en')} files`, 'find tree -type f | wc -l', String(TREE_FILES)],
  ['ls -lR of that tree', 'ls -lR tree | wc -l', undefined],
  ['grep -r over that tree', 'grep -r -c "file 4" tree | wc -l', String(TREE_FILES)],
  ['du -s of that tree', 'du -s tree > /dev/null', undefined],
  // Each run unpacks into a folder of its own, and each rm -rf run removes one of them.
  [`untar ${TREE_FILES.toLocaleString('en')} files`, 'd=$(mktemp -d -p . untar.XXXXXX) && tar xf "$HERDS_BENCH_TARBALL" -C "$d" && find "$d" -type f | wc -l', String(TREE_FILES)],
  ['rm -rf of that untar', 'd=$(ls -d untar.* | head -1) && rm -rf "$d" && ls -d untar.* 2>/dev/null | wc -l', undefined],
  [`git status, ${REPO_FILES.toLocaleString('en')} files`, 'cd repo && git status --porcelain', ''],
  [`re-read ${REREAD_MIB} MiB just read`, 'cat big.bin > /dev/null', undefined],
]

/** The ms of each run of each workload in `dir`, RUNS runs (the re-read after one read first). */
export function measure (dir) {
  return WORKLOADS.map(([label, script, expect]) => {
    if (label.startsWith('re-read')) timeScript(script, dir) // the read a moment ago
    return Array.from({ length: RUNS }, () => timeScript(script, dir, expect))
  })
}

/** Prints the figures of each place side by side, with the mount's time as a multiple of the others'. */
export function printMetadata (places, sshMissing) {
  const pad = (s, n) => String(s).padEnd(n)
  const names = places.map(([name]) => name)
  console.log(`\nmetadata and cache, ms: median of ${RUNS} runs (fastest-slowest); "x" = the mount's median / the other's`)
  const ratios = names.slice(1).map((n) => `mount/${n}`)
  console.log(`  ${pad('', 26)}${names.map((n) => pad(n, 24)).join('')}${ratios.map((n) => pad(n, 13)).join('')}`)
  const shown = (runs) => `${median(runs).toFixed(1)} (${Math.min(...runs).toFixed(0)}-${Math.max(...runs).toFixed(0)})`
  WORKLOADS.forEach(([label], i) => {
    const runs = places.map(([, figures]) => figures[i])
    const mount = median(runs[0])
    console.log(`  ${pad(label, 26)}${runs.map((r) => pad(shown(r), 24)).join('')}${runs.slice(1).map((r) => pad(`${(mount / median(r)).toFixed(1)}x`, 13)).join('')}`)
  })
  if (sshMissing) console.log(`  (no sshfs column: ${sshMissing})`)
}
