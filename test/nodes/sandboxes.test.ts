// Sandboxes kept on disk: a damaged record never keeps the node from starting; state and config come back.
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { detectCgroups, removeSetup } from '../../nodes/cgroups.js'
import { Sandboxes } from '../../nodes/sandboxes.js'
import { openNodeDb } from '../../nodes/store.js'
import { readWhole, writeWhole } from '../../tree/bind.js'
import { SyntheticTree } from '../../tree/synthetic.js'
import { tempDir } from '../e2e/harness.js'

t.test('a damaged sandbox.json gives the defaults and says so; a good one restores config and state', async (t) => {
  const home = tempDir(t)
  const root = join(home, 'sandboxes')
  mkdirSync(join(root, 'broken'), { recursive: true })
  writeFileSync(join(root, 'broken', 'sandbox.json'), '{"config": {"network": "nope"')
  const db = openNodeDb(join(home, 'db'))
  t.teardown(() => db.close())
  const make = async (): Promise<{ sandboxes: Sandboxes, tree: SyntheticTree }> => {
    const sandboxes = new Sandboxes({ root, volumes: join(home, 'volumes'), db, shell: '/bin/sh', fence: 'none' })
    t.teardown(() => sandboxes.stopAll())
    await sandboxes.load()
    return { sandboxes, tree: new SyntheticTree(sandboxes.dir()) }
  }
  const first = await make()
  t.same(first.sandboxes.names(), ['broken'])
  t.match((await readWhole(first.tree, '/broken/exec/error')).toString(), /sandbox\.json could not be read.*defaults are in force/)
  await first.sandboxes.create('kept', { env: { A: '1' } })
  await writeWhole(first.tree, '/kept/ctl', Buffer.from('stop\n'))
  await first.sandboxes.stopAll()

  const second = await make()
  const status = JSON.parse((await readWhole(second.tree, '/kept/status.json')).toString())
  t.equal(status.state, 'stopped', 'a stopped sandbox stays stopped across a restart')
  t.match(JSON.parse((await readWhole(second.tree, '/kept/config.json')).toString()), { env: { A: '1' } })
  await writeWhole(second.tree, '/kept/ctl', Buffer.from('start\n'))
  await second.sandboxes.stopAll()

  // A sandbox.json written before the states were named ("running" for started) still reads.
  const saved = join(root, 'kept', 'sandbox.json')
  writeFileSync(saved, readFileSync(saved, 'utf8').replace('"started"', '"running"'))
  t.match(readFileSync(saved, 'utf8'), /"state": "running"/)
  const third = await make()
  t.match(JSON.parse((await readWhole(third.tree, '/kept/status.json')).toString()), { state: 'ready', running: 0 }, 'started, running nothing')
})

const cgroups = detectCgroups()
removeSetup(cgroups)

t.test('where the node has cgroups, a process that left its job\'s process group ends with the job, even without a fence', { skip: cgroups.hierarchies.length === 0 && 'no cgroups here' }, async (t) => {
  const home = tempDir(t)
  const db = openNodeDb(join(home, 'db'))
  t.teardown(() => db.close())
  const sandboxes = new Sandboxes({ root: join(home, 'sandboxes'), volumes: join(home, 'volumes'), db, shell: '/bin/sh', fence: 'none' })
  t.teardown(() => sandboxes.stopAll())
  t.teardown(() => spawnSync('pkill', ['-f', 'sleep 79.9']))
  await sandboxes.load()
  await sandboxes.create('web')
  const tree = new SyntheticTree(sandboxes.dir())
  await writeWhole(tree, '/web/exec/cmd', Buffer.from('setsid sleep 79.9 > /dev/null 2>&1 < /dev/null & echo left\n'))
  t.equal((await readWhole(tree, '/web/exec/exit')).toString(), '0\n', 'the job ends at once: nothing holds its output')
  t.equal(spawnSync('pgrep', ['-af', 'sleep 79.9'], { encoding: 'utf8' }).stdout, '', 'and its daemon with it')
})
