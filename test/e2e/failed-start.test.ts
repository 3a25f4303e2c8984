// A job whose output files cannot be made (issue 10, point 4): the node's job folder is a tmpfs
// with few inodes, filled for real. The job ends failed_to_start, its readers end, the slot is free.
import { spawn } from 'node:child_process'
import { readdirSync, rmSync, writeFileSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { errnoOf } from './files.js'
import { spawnHerds, tempDir, tmpfsAt, unmountAtTeardown } from './harness.js'

const root = tempDir(t)
const home = join(root, 'home')
const mnt = join(root, 'mnt')
const jobsDir = join(home, 'nodes', 'studio', 'jobs')
tmpfsAt(t, jobsDir, 'size=4m,nr_inodes=64')
unmountAtTeardown(t, mnt)
const up = spawnHerds(t, ['up', '--port', '0', '--name', 'studio', '--mount', mnt], home)
await up.waitFor(/Ctrl-C to stop/)
const exec = join(mnt, 'nodes', 'studio', 'exec')

/** Takes every free inode of the job folder; returns how many it took. */
function fill (): number {
  let taken = 0
  for (;;) {
    try { writeFileSync(join(jobsDir, `fill-${taken}`), '') } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') return taken
      throw err
    }
    taken++
  }
}

/** Gives back `count` inodes (all when undefined). */
function free (count?: number): void {
  const fills = readdirSync(jobsDir).filter((name) => name.startsWith('fill-'))
  for (const name of fills.slice(0, count ?? fills.length)) rmSync(join(jobsDir, name))
}

/** `cat path` in a process of its own: resolves with what it printed and its exit code, or 'hung' after 20 s. */
function cat (path: string): Promise<{ out: string, code: number | null } | 'hung'> {
  const child = spawn('cat', [path], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (chunk) => { out += chunk })
  return new Promise((resolve) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); resolve('hung') }, 20_000)
    child.on('exit', (code) => { clearTimeout(timer); resolve({ out, code }) })
  })
}

t.teardown(() => free())

t.test('a job of its own: cmd says ENOSPC, it is failed_to_start, waiting readers end', async (t) => {
  await mkdir(join(exec, 'jobs', 'a'))
  const job = join(exec, 'jobs', 'a')
  const exitReader = cat(join(job, 'exit'))
  const stdoutReader = cat(join(job, 'stdout'))
  await new Promise((resolve) => setTimeout(resolve, 300)) // both are waiting on the node
  t.ok(fill() > 0, 'the job folder is out of inodes')
  t.equal(await errnoOf(writeFile(join(job, 'cmd'), 'echo hi\n')), 'ENOSPC')
  const status = JSON.parse(await readFile(join(job, 'status'), 'utf8'))
  t.match(status, { state: 'failed_to_start', pid: null, exitCode: 127, error: /output files could not be made.*ENOSPC/ })
  t.same(await exitReader, { out: '127\n', code: 0 }, 'the reader of exit ended')
  t.same(await stdoutReader, { out: '', code: 0 }, 'the reader of stdout ended')
  t.equal(await errnoOf(writeFile(join(exec, 'jobs', 'a', 'ctl'), 'kill\n')), 'none', 'kill of an ended job does nothing')
  t.match(await readFile(join(exec, 'error'), 'utf8'), /jobs\/a\/cmd: ENOSPC: job a failed to start/)
  free()
})

t.test('the slot: new and cmd say ENOSPC (not ENOENT); a failed start leaves the slot free', async (t) => {
  fill()
  t.equal(await errnoOf(readFile(join(exec, 'new'))), 'ENOSPC', 'new, with no inode for the job\'s folder')
  t.equal(await errnoOf(writeFile(join(exec, 'cmd'), 'echo hi\n')), 'ENOSPC', 'cmd, with no inode for the job\'s folder')
  free(1) // room for the job's folder, none for its files
  t.equal(await errnoOf(writeFile(join(exec, 'cmd'), 'echo hi\n')), 'ENOSPC', 'cmd, with no inode for its output')
  t.match(JSON.parse(await readFile(join(exec, 'status'), 'utf8')), { state: 'failed_to_start', error: /ENOSPC/ })
  t.same(await cat(join(exec, 'exit')), { out: '127\n', code: 0 })
  t.same(await cat(join(exec, 'stdout')), { out: '', code: 0 })
  free()
  await writeFile(join(exec, 'cmd'), 'echo ok\n')
  t.equal(await readFile(join(exec, 'stdout'), 'utf8'), 'ok\n', 'the slot took the next command')
  t.equal(await readFile(join(exec, 'exit'), 'utf8'), '0\n')
})
