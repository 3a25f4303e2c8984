// A local tree's fifos and sockets, extended attributes, rename flags and fsync (issue 12),
// on a real temporary directory, through the tree/native addon; and what they refuse.
import { lstatSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { hasFileCalls } from '../../tree/native.js'
import { LocalTree } from '../../tree/local.js'
import { O_RDWR, RENAME_EXCHANGE, RENAME_NOREPLACE, S_IFIFO, S_IFSOCK, XATTR_CREATE, XATTR_REPLACE } from '../../tree/tree.js'
import { tempDir } from '../e2e/harness.js'

if (!hasFileCalls()) t.fail('tree/native is not built: run npm run setup')
const root = tempDir(t)
const outside = tempDir(t)
writeFileSync(join(outside, 'target'), 'outside')
const tree = new LocalTree(root)
const S_IFCHR = 0o020000
const S_IFBLK = 0o060000
const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString()

t.test('mknod makes fifos and sockets with the mode asked; devices never', async (t) => {
  await tree.mknod('/pipe', S_IFIFO | 0o640)
  t.ok(lstatSync(join(root, 'pipe')).isFIFO())
  t.equal(lstatSync(join(root, 'pipe')).mode & 0o777, 0o640)
  t.equal((await tree.getattr('/pipe')).mode, S_IFIFO | 0o640, 'getattr says fifo')
  await tree.mknod('/sock', S_IFSOCK | 0o600)
  t.ok(lstatSync(join(root, 'sock')).isSocket())
  await t.rejects(tree.mknod('/pipe', S_IFIFO | 0o600), { code: 'EEXIST' })
  await t.rejects(tree.mknod('/dev', S_IFCHR | 0o600), { code: 'EPERM' }, 'a character device, even on a root node')
  await t.rejects(tree.mknod('/blk', S_IFBLK | 0o600), { code: 'EPERM' })
  t.throws(() => lstatSync(join(root, 'dev')), { code: 'ENOENT' })
})

t.test('mknod through a link out of the tree is refused', async (t) => {
  symlinkSync(outside, join(root, 'out'))
  await t.rejects(tree.mknod('/out/pipe', S_IFIFO | 0o600), { code: 'EACCES' })
  t.throws(() => lstatSync(join(outside, 'pipe')), { code: 'ENOENT' })
})

t.test('user.* attributes are set, read, listed and removed; create and replace are kept', async (t) => {
  writeFileSync(join(root, 'f'), 'x')
  await tree.setxattr('/f', 'user.mime', Buffer.from('text/plain'), 0)
  t.equal(text(await tree.getxattr('/f', 'user.mime')), 'text/plain')
  t.same(await tree.listxattr('/f'), ['user.mime'])
  await t.rejects(tree.setxattr('/f', 'user.mime', Buffer.from('x'), XATTR_CREATE), { code: 'EEXIST' })
  await t.rejects(tree.setxattr('/f', 'user.new', Buffer.from('x'), XATTR_REPLACE), { code: 'ENODATA' })
  await tree.setxattr('/f', 'user.empty', Buffer.alloc(0), 0)
  t.equal((await tree.getxattr('/f', 'user.empty')).length, 0, 'an empty value is a value')
  await tree.removexattr('/f', 'user.mime')
  await t.rejects(tree.getxattr('/f', 'user.mime'), { code: 'ENODATA' })
  await t.rejects(tree.removexattr('/f', 'user.mime'), { code: 'ENODATA' })
  await tree.setxattr('/', 'user.at-root', Buffer.from('r'), 0)
  t.equal(text(await tree.getxattr('/', 'user.at-root')), 'r', 'the root itself')
})

t.test('attacker: no trusted.*, security.* or system.* attributes, and a link is never followed', async (t) => {
  for (const name of ['trusted.overlay.opaque', 'security.capability', 'system.posix_acl_access']) {
    await t.rejects(tree.setxattr('/f', name, Buffer.from('x'), 0), { code: 'ENOTSUP' }, name)
    await t.rejects(tree.getxattr('/f', name), { code: 'ENOTSUP' })
    await t.rejects(tree.removexattr('/f', name), { code: 'ENOTSUP' })
  }
  await t.rejects(tree.setxattr('/out/target', 'user.planted', Buffer.from('x'), 0), { code: 'EACCES' }, 'through a link out')
  symlinkSync(join(outside, 'target'), join(root, 'leaf'))
  await t.rejects(tree.setxattr('/leaf', 'user.planted', Buffer.from('x'), 0), { code: 'EPERM' }, 'on the link itself, which Linux refuses for user.*')
  t.same(await tree.listxattr('/out'), [], 'the link, not what it points to')
  await t.rejects(tree.setxattr('/f', 'user.big', Buffer.alloc(70 * 1024), 0), { code: 'E2BIG' }, 'past 64 KiB')
  await t.rejects(tree.getxattr('/f', 'user.' + 'n'.repeat(300)), { code: 'ERANGE' }, 'a name past 255 bytes')
})

t.test('an attribute name of exactly 255 bytes, the most the wire and the kernel allow, is kept whole', async (t) => {
  writeFileSync(join(root, 'long'), 'x')
  for (const name of ['user.' + 'n'.repeat(250), 'user.' + 'n'.repeat(248) + '\u00e9', 'user.' + 'n'.repeat(247) + '\u65e5']) {
    t.equal(Buffer.byteLength(name), 255)
    await tree.setxattr('/long', name, Buffer.from('v'), 0)
    t.equal(text(await tree.getxattr('/long', name)), 'v', 'read back by the same name')
    t.ok((await tree.listxattr('/long')).includes(name), 'listed whole, not cut short')
    await tree.removexattr('/long', name)
  }
  t.same(await tree.listxattr('/long'), [], 'no name cut short was set')
})

t.test('rename: no replace fails on a taken name; exchange swaps two names atomically', async (t) => {
  writeFileSync(join(root, 'a'), 'A')
  writeFileSync(join(root, 'b'), 'B')
  await t.rejects(tree.rename('/a', '/b', RENAME_NOREPLACE), { code: 'EEXIST' })
  t.equal(readFileSync(join(root, 'b'), 'utf8'), 'B', 'b untouched')
  await tree.rename('/a', '/c', RENAME_NOREPLACE)
  await tree.rename('/c', '/b', RENAME_EXCHANGE)
  t.equal(readFileSync(join(root, 'b'), 'utf8'), 'A')
  t.equal(readFileSync(join(root, 'c'), 'utf8'), 'B')
  await t.rejects(tree.rename('/c', '/none', RENAME_EXCHANGE), { code: 'ENOENT' }, 'both must exist')
})

t.test('fsync and fdatasync of an open file', async (t) => {
  const fh = await tree.open('/b', O_RDWR)
  await tree.write('/b', fh, 0, Buffer.from('synced'))
  await tree.fsync('/b', fh, false)
  await tree.fsync('/b', fh, true)
  await tree.release('/b', fh)
  t.equal(readFileSync(join(root, 'b'), 'utf8'), 'synced')
  await t.rejects(tree.fsync('/b', fh, false), { code: 'EBADF' }, 'a handle let go')
})
