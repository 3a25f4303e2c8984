// The fences' argument lists: what a job may write, for each OS's fence.
import t from 'tap'
import { bwrapArgs, detectFence, fenceArgs, sandboxProfile } from '../../nodes/fence.js'

const spec = { writable: ['/s/workspace', '/s/home'], hidden: ['/herds'], binds: [['/v/data', '/s/workspace/data']] as Array<[string, string]>, network: false, cwd: '/s/workspace' }

t.test('bwrap: read-only system, the writable folders bound after /tmp, no capabilities, no network when asked', async (t) => {
  const args = bwrapArgs(spec).join(' ')
  t.match(args, /^bwrap --ro-bind \/ \/ .*--tmpfs \/tmp .*--tmpfs \/herds --bind \/s\/workspace \/s\/workspace --bind \/s\/home \/s\/home /)
  t.match(args, /--cap-drop ALL/)
  t.match(args, /--bind \/v\/data \/s\/workspace\/data/)
  t.match(args, /--unshare-net --chdir \/s\/workspace --$/)
  t.notMatch(bwrapArgs({ ...spec, network: true }).join(' '), /--unshare-net/)
})

t.test('sandbox-exec: writes denied but for the sandbox and its volumes; paths quoted', async (t) => {
  const profile = sandboxProfile({ ...spec, writable: ['/s/a "b"'] })
  t.match(profile, /\(deny file-write\*\)/)
  t.match(profile, /\(subpath "\/s\/a \\"b\\""\)/)
  t.match(profile, /\(subpath "\/v\/data"\)/)
  t.match(profile, /\(deny network-outbound \(remote ip\)\)/)
  t.match(profile, /\(deny file-read\* \(subpath "\/herds"\)\)\n\(allow file-read\* \(subpath "\/s\/a/, 'Herds\' own state unreadable, the sandbox readable again')
  t.same(fenceArgs('sandbox-exec', spec).slice(0, 2), ['/usr/bin/sandbox-exec', '-p'])
  t.same(fenceArgs('none', spec), [])
})

t.test('which fence a platform offers', async (t) => {
  t.equal(detectFence('win32'), 'none')
  t.ok(['bwrap', 'none'].includes(detectFence('linux')))
})
