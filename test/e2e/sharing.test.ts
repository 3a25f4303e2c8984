// A mount shared with the machine's other users (--allow-other, issue 12): another user reads and
// writes as the modes shown allow, never runs a command with the mount's token; without the flag
// another user cannot even look inside.
import { chmodSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { mkdir, writeFile, chmod } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import t from 'tap'
import { herdsUp } from './harness.js'

const root = process.getuid?.() === 0
const hasSetpriv = spawnSync('sh', ['-c', 'command -v setpriv']).status === 0
/** Runs a shell line as nobody (uid and gid 65534, no groups): what it printed, errors included. */
const asNobody = (line: string): string => spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', `{ ${line}; } 2>&1`], { encoding: 'utf8', timeout: 20_000 }).stdout
/** Lets other users walk to the mountpoint (the test's temporary folder is private). */
const reachable = (mountpoint: string): void => chmodSync(dirname(mountpoint), 0o711)

t.test('with --allow-other another user reads what the modes allow, and starts no job', { skip: (!root || !hasSetpriv) && 'needs root and setpriv' }, async (t) => {
  const up = await herdsUp(t, 'studio', ['--allow-other'])
  reachable(up.mountpoint)
  t.match(up.proc.output(), /shared with the machine's other users/)
  const vol = join(up.nodeDir, 'volumes', 'shared')
  await mkdir(vol)
  await writeFile(join(vol, 'open.txt'), 'for everyone\n')
  await chmod(join(vol, 'open.txt'), 0o644)
  await writeFile(join(vol, 'private.txt'), 'mine\n')
  await chmod(join(vol, 'private.txt'), 0o600)
  await writeFile(join(vol, 'team.txt'), 'ours\n')
  await chmod(join(vol, 'team.txt'), 0o666)
  t.equal(asNobody(`cat ${vol}/open.txt`), 'for everyone\n', 'a 644 file is read')
  t.match(asNobody(`echo x >> ${vol}/open.txt`), /Permission denied/, 'and not written')
  t.match(asNobody(`cat ${vol}/private.txt`), /Permission denied/, 'a 600 file is not read')
  t.equal(asNobody(`echo added >> ${vol}/team.txt && cat ${vol}/team.txt`), 'ours\nadded\n', 'a 666 file is written, as on a shared disk')
  const cmd = join(up.nodeDir, 'exec', 'cmd')
  t.match(asNobody(`stat -c %A ${cmd}`), /^-rw-r--r--\n$|^--w-------\n$/, 'commands show write for the mount\'s user alone')
  t.match(asNobody(`echo 'touch /tmp/herds-nobody-ran' > ${cmd}`), /Permission denied/, 'another user cannot start a job')
  t.match(asNobody(`mkdir ${up.mountpoint}/.herds/control/tokens/stolen`), /Permission denied/, 'nor make a token')
  t.equal(spawnSync('sh', ['-c', `echo 'echo ran' > ${cmd} && cat ${join(up.nodeDir, 'exec', 'output')}`], { encoding: 'utf8' }).stdout, 'ran\n', 'the mount\'s user still does')
})

t.test('without --allow-other another user cannot look inside at all', { skip: (!root || !hasSetpriv) && 'needs root and setpriv' }, async (t) => {
  const up = await herdsUp(t)
  reachable(up.mountpoint)
  t.match(asNobody(`ls ${up.mountpoint}`), /Permission denied/)
  t.match(asNobody(`cat ${up.mountpoint}/README.md`), /Permission denied/)
})
