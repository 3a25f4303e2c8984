// The bench's metadata and cache figures: find, ls -lR, grep -r and du over a
// tree of 5,000 files, untar of those files and rm -rf of what was untarred,
// git status in a repository of 1,500 files and git clone of one, 10,000 files
// made in one folder, listed with ls -l and removed, and a re-read of a 50 MiB
// file read a moment ago. Each place (the mount, the local disk, sshfs) gets
// the same tree, made on the disk beneath it, so only the way in differs.
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export const TREE_FILES = 5000
export const REPO_FILES = 1500
export const REREAD_MIB = 50
export const FOLDER_FILES = 10_000
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
  // The same tarball and repository to clone for every place, on the local disk: only where they are unpacked differs.
  if (!TARBALL.path) {
    TARBALL.path = join(scratch, 'tree.tar')
    execFileSync('tar', ['cf', TARBALL.path, '-C', onDisk, 'tree'])
    TARBALL.repo = join(scratch, 'source-repo')
    writeTree(TARBALL.repo, REPO_FILES)
    execFileSync('git', [...GIT, 'init', '-q'], { cwd: TARBALL.repo })
    execFileSync('git', [...GIT, 'add', '-A'], { cwd: TARBALL.repo })
    execFileSync('git', [...GIT, 'commit', '-qm', 'bench'], { cwd: TARBALL.repo })
  }
  writeTree(join(onDisk, 'repo'), REPO_FILES)
  writeFileSync(join(onDisk, 'big.bin'), Buffer.alloc(REREAD_MIB * 1024 * 1024, 7))
  execFileSync('git', [...GIT, 'init', '-q'], { cwd: join(seen, 'repo') })
  execFileSync('git', [...GIT, 'add', '-A'], { cwd: join(seen, 'repo') })
  execFileSync('git', [...GIT, 'commit', '-qm', 'bench'], { cwd: join(seen, 'repo') })
}

const GIT = ['-c', 'user.name=bench', '-c', 'user.email=bench@localhost', '-c', 'init.defaultBranch=main']

/** Milliseconds `script` takes in `cwd`; throws if its output is not `expect` (when given). */
function timeScript (script, cwd, expect) {
  const started = process.hrtime.bigint()
  const out = execFileSync('sh', ['-c', script], { cwd, encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, HERDS_BENCH_TARBALL: TARBALL.path, HERDS_BENCH_REPO: TARBALL.repo } })
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (expect !== undefined && out.trim() !== expect) throw new Error(`${script} in ${cwd} said ${JSON.stringify(out.slice(0, 200))}, not ${JSON.stringify(expect)}`)
  return ms
}

/** The 5,000 files as a tarball, and a repository to clone, made once in the bench's own temporary folder on the local disk. */
const TARBALL = { path: '', repo: '' }

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
  [`git clone, ${REPO_FILES.toLocaleString('en')} files`, 'd=$(mktemp -d -p . clone.XXXXXX) && git clone -q "$HERDS_BENCH_REPO" "$d/r" && git -C "$d/r" status --porcelain | wc -l', '0'],
  // As with untar: each run makes a folder of its own; ls -l lists the first, each rm -rf removes one.
  [`${FOLDER_FILES.toLocaleString('en')} files in one folder`, `d=$(mktemp -d -p . many.XXXXXX) && cd "$d" && seq ${FOLDER_FILES} | sed s/^/f/ | xargs touch && ls | wc -l`, String(FOLDER_FILES)],
  ['ls -l of that folder', 'ls -l "$(ls -d many.* | head -1)" | wc -l', String(FOLDER_FILES + 1)],
  ['rm -rf of that folder', 'd=$(ls -d many.* | head -1) && rm -rf "$d" && echo done', 'done'],
  [`re-read ${REREAD_MIB} MiB just read`, 'cat big.bin > /dev/null', undefined],
]

/** The ms of each run of each workload in `dir`, RUNS runs (the re-read after one read first). */
export function measure (dir) {
  return WORKLOADS.map(([label, script, expect]) => {
    if (label.startsWith('re-read')) timeScript(script, dir) // the read a moment ago
    return Array.from({ length: RUNS }, () => timeScript(script, dir, expect))
  })
}

/**
 * Prints the figures of each place side by side, with each Herds shape's time
 * as a multiple of each other place's (places: [name, figures, isHerds]).
 */
export function printMetadata (places, sshMissing) {
  const pad = (s, n) => String(s).padEnd(n)
  const herds = places.filter(([, , isHerds]) => isHerds)
  const others = places.filter(([, , isHerds]) => !isHerds)
  const ratios = herds.flatMap(([h]) => others.map(([o]) => [h, o]))
  const short = (name) => name === 'herds up' ? 'up' : name === 'three processes' ? '3 procs' : name
  console.log(`\nmetadata and cache, ms: median of ${RUNS} runs (fastest-slowest); "x" = Herds' median / the other's (below 1: Herds is faster)`)
  console.log(`  ${pad('', 28)}${places.map(([n]) => pad(n, 22)).join('')}${ratios.map(([h, o]) => pad(`${short(h)}/${short(o)}`, 14)).join('')}`)
  const shown = (runs) => `${median(runs).toFixed(0)} (${Math.min(...runs).toFixed(0)}-${Math.max(...runs).toFixed(0)})`
  const at = (name, i) => places.find(([n]) => n === name)[1][i]
  WORKLOADS.forEach(([label], i) => {
    const cells = places.map(([, figures]) => pad(shown(figures[i]), 22)).join('')
    const xs = ratios.map(([h, o]) => pad(`${(median(at(h, i)) / median(at(o, i))).toFixed(2)}x`, 14)).join('')
    console.log(`  ${pad(label, 28)}${cells}${xs}`)
  })
  if (sshMissing) console.log(`  (no sshfs column: ${sshMissing})`)
}
