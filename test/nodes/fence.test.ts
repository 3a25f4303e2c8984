// The fences' argument lists: what a job may write, for each OS's fence, and which FUSE mounts it is kept from.
import t from 'tap'
import { bwrapArgs, detectFence, fenceArgs, sandboxProfile, type FenceSpec } from '../../nodes/fence.js'
import { parseMacMounts, parseMountinfo, type FuseMount } from '../../nodes/mounts.js'

const spec: FenceSpec = { writable: ['/s/workspace', '/s/home'], hidden: ['/herds'], binds: [['/v/data', '/s/workspace/data']], network: false, cwd: '/s/workspace' }
const fuse = (path: string, type = 'fuse.herds'): FuseMount => ({ path, raw: path.replace(/ /g, '\\040'), type, source: 'herds' })
/** The places bwrap makes an empty, read-only directory over. */
const hiddenPlaces = (args: string[]): string[] => args.flatMap((arg, i) => arg === '--remount-ro' ? [args[i + 1]] : [])

t.test('bwrap: read-only system, the writable folders bound after /tmp, no capabilities, no network when asked', async (t) => {
  const args = bwrapArgs(spec).join(' ')
  t.match(args, /^bwrap .*--ro-bind \/ \/ .*--tmpfs \/tmp .*--tmpfs \/herds --bind \/s\/workspace \/s\/workspace --bind \/s\/home \/s\/home /)
  t.match(args, /--cap-drop ALL/)
  t.match(args, /--unshare-pid/)
  t.match(args, /--bind \/v\/data \/s\/workspace\/data/)
  t.match(args, /--unshare-net --chdir \/s\/workspace --$/)
  t.notMatch(bwrapArgs({ ...spec, network: true }).join(' '), /--unshare-net/)
})

t.test('bwrap: every FUSE mount the job would see is made empty and read-only, right after what brought it in', async (t) => {
  const args = bwrapArgs({ ...spec, fuse: [fuse('/root/herds'), fuse('/Volumes/herds a'), fuse('/root/herds/deeper')] })
  t.same(hiddenPlaces(args), ['/root/herds', '/Volumes/herds a'], 'a mount inside a hidden one needs nothing more')
  const joined = args.join(' ')
  t.match(joined, /^bwrap .*--ro-bind \/ \/ --tmpfs \/root\/herds --remount-ro \/root\/herds --tmpfs \/Volumes\/herds a --remount-ro \/Volumes\/herds a --dev \/dev/)
})

t.test('bwrap: mounts under /tmp or Herds\' state are covered already; under a writable folder or a volume they are hidden there', async (t) => {
  const args = bwrapArgs({
    ...spec,
    fuse: [fuse('/tmp/herds-x/mnt'), fuse('/herds/other'), fuse('/s/workspace/inner'), fuse('/v/data/sub'), fuse('/s/home')],
  })
  t.same(hiddenPlaces(args), ['/v/data/sub', '/s/workspace/inner', '/s/home', '/s/workspace/data/sub'], 'a volume\'s mount, where it is and where the volume is bound')
  const joined = args.join(' ')
  t.match(joined, /--bind \/s\/workspace \/s\/workspace --tmpfs \/s\/workspace\/inner --remount-ro \/s\/workspace\/inner --bind \/s\/home \/s\/home --tmpfs \/s\/home --remount-ro \/s\/home --bind \/v\/data \/s\/workspace\/data --tmpfs \/s\/workspace\/data\/sub/)
  t.notMatch(joined, /--tmpfs \/tmp\/herds-x|--tmpfs \/herds\/other/)
})

t.test('bwrap: a mount above a later bind is hidden before it, so the bind still shows', async (t) => {
  const args = bwrapArgs({ ...spec, fuse: [fuse('/s')] }).join(' ')
  t.match(args, /--ro-bind \/ \/ --tmpfs \/s --remount-ro \/s .*--bind \/s\/workspace \/s\/workspace/)
})

t.test('bwrap: allowMounts lets a mount through; the check and the mount namespace come first', async (t) => {
  const mounts = [fuse('/mnt/sshfs', 'fuse.sshfs'), fuse('/root/herds')]
  t.same(hiddenPlaces(bwrapArgs({ ...spec, fuse: mounts, allowMounts: ['/mnt/sshfs'] })), ['/root/herds'])
  const words = fenceArgs('bwrap', { ...spec, fuse: [fuse('/a b')], mountNamespace: ['unshare', '--mount', '--propagation', 'private', '--'] })
  t.same(words.slice(0, 6), ['unshare', '--mount', '--propagation', 'private', '--', '/bin/sh'])
  t.same(words.slice(8, 11), ['herds-fence', '/a\\040b', 'bwrap'], 'the check is told the mounts as mountinfo writes them')
})

t.test('mountinfo: FUSE mounts found whatever their optional fields; escaped names decoded', async (t) => {
  const text = [
    '22 27 0:21 / /proc rw,relatime - proc proc rw',
    '90 27 0:50 / /root/herds rw,nosuid,nodev shared:1 master:2 - fuse.herds herds rw,user_id=0,group_id=0',
    '91 27 0:51 / /var/tmp/a\\040b\\011c\\134d rw - fuse sshfs#x rw',
    '92 27 8:1 / /media/usb rw - fuseblk /dev/sdb1 rw',
    '93 27 0:52 / /data rw - ext4 /dev/sda1 rw',
    'garbage',
  ].join('\n')
  t.same(parseMountinfo(text), [
    { path: '/root/herds', raw: '/root/herds', type: 'fuse.herds', source: 'herds' },
    { path: '/var/tmp/a b\tc\\d', raw: '/var/tmp/a\\040b\\011c\\134d', type: 'fuse', source: 'sshfs#x' },
    { path: '/media/usb', raw: '/media/usb', type: 'fuseblk', source: '/dev/sdb1' },
  ])
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

t.test('sandbox-exec: FUSE mounts and the usual places of a Herds mount neither read nor written, after every allow', async (t) => {
  const mounts = parseMacMounts([
    '/dev/disk3s1s1 on / (apfs, sealed, local, read-only, journaled)',
    'herds@macfuse0 on /Volumes/herds (macfuse, nodev, nosuid, synchronous, mounted by user)',
    'sshfs@osxfuse1 on /Users/me/remote dir (osxfuse, nodev, nosuid, mounted by me)',
    'fuse-t:/x on /Users/me/x (nfs, nodev, nosuid, mounted by me)',
    'map auto_home on /System/Volumes/Data/home (autofs, automounted, nobrowse)',
  ].join('\n'))
  t.same(mounts.map((m) => m.path), ['/Volumes/herds', '/Users/me/remote dir', '/Users/me/x'])
  const profile = sandboxProfile({ ...spec, fuse: mounts, usualMounts: ['/Volumes/herds', '/Users/me/herds'], allowMounts: ['/Users/me/x'] })
  const lines = profile.split('\n')
  const deny = lines.findIndex((line) => line.startsWith('(deny file-read* file-write*'))
  t.equal(lines[deny], '(deny file-read* file-write* (subpath "/Volumes/herds") (subpath "/Users/me/remote dir") (subpath "/Users/me/herds"))')
  t.ok(lines.slice(deny + 1).every((line) => !line.startsWith('(allow')), 'no allow after it (the last rule that matches wins)')
})

t.test('which fence a platform offers', async (t) => {
  t.equal(detectFence('win32'), 'none')
  t.ok(['bwrap', 'none'].includes(detectFence('linux')))
})
