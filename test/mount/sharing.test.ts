// --allow-other's check before mounting, and the modes a shared mount shows.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { checkAllowOther, sharedMode } from '../../mount/sharing.js'
import { tempDir } from '../e2e/harness.js'

t.test('a user other than root needs user_allow_other in fuse.conf; the refusal says how', async (t) => {
  const conf = join(tempDir(t), 'fuse.conf')
  t.throws(() => checkAllowOther(1000, conf), { code: 'EPERM', message: /needs the line user_allow_other in \S+fuse\.conf \(add it as root\)/ }, 'no file')
  writeFileSync(conf, '# user_allow_other\nmount_max = 1000\n')
  t.throws(() => checkAllowOther(1000, conf), { code: 'EPERM' }, 'only a comment')
  writeFileSync(conf, 'mount_max = 1000\nuser_allow_other\n')
  t.doesNotThrow(() => checkAllowOther(1000, conf))
  t.doesNotThrow(() => checkAllowOther(0, join(tempDir(t), 'none')), 'root needs nothing')
})

t.test('computed files lose group and other write; files in volumes keep the node\'s modes', async (t) => {
  t.equal(sharedMode('/nodes/a/exec/cmd', 0o100666), 0o100644)
  t.equal(sharedMode('/.herds/control/tokens', 0o040777), 0o040755)
  t.equal(sharedMode('/nodes/a/volumes/v/team.txt', 0o100666), 0o100666)
  t.equal(sharedMode('/nodes/a/sandboxes/b/workspace/x', 0o100664), 0o100664)
})
