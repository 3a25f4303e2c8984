// What a program expects of a disk, through a real mount on a volume (issue 12): links, special files,
// times to the nanosecond, xattrs, long names, unlinked open files, mmap, SQLite in WAL mode.
import { spawn, spawnSync } from 'node:child_process'
import { lstatSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { mkdir, readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { herdsUp } from './harness.js'

const up = await herdsUp(t)
const vol = join(up.nodeDir, 'volumes', 'posix')
await mkdir(vol)
/** The same volume on the node's disk, where the node keeps its volumes. */
const disk = join(up.home, 'nodes', up.name, 'volumes', 'posix')

interface Ran { status: number | null, stdout: string, stderr: string }
const sh = (script: string, cwd = vol): Ran =>
  spawnSync('sh', ['-c', script], { cwd, encoding: 'utf8', timeout: 120_000, env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' } })
/** Runs a Python program with `args` as sys.argv[1:]; cwd is the volume. */
const py = (code: string, ...args: string[]): Ran =>
  spawnSync('python3', ['-c', code, ...args], { cwd: vol, encoding: 'utf8', timeout: 120_000 })
/** A fresh folder for one case, in the volume through the mount; returns its path there and on the node's disk. */
const folder = async (name: string): Promise<{ m: string, d: string }> => {
  await mkdir(join(vol, name))
  return { m: join(vol, name), d: join(disk, name) }
}
/** The start of what a program said on stderr, for an assertion's message. */
const said = (r: Ran): string => r.stderr.replace(/\s+/g, ' ').slice(0, 300)
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

t.test('ln makes a hard link: one inode, link count 2, shared content, find -samefile finds both', async (t) => {
  const { m, d } = await folder('links')
  writeFileSync(join(m, 'a'), 'first\n')
  const ln = sh('ln a b', m)
  t.equal(ln.status, 0, `ln a b: ${said(ln)}`)
  const [ia, ib] = sh('stat -c "%i %h" a b', m).stdout.trim().split('\n')
  t.ok(ia !== undefined && ia === ib, `the same inode and link count for both names (${ia} / ${ib})`)
  t.match(ia, / 2$/, 'link count 2')
  writeFileSync(join(m, 'b'), 'written through b\n')
  t.equal(readFileSync(join(m, 'a'), 'utf8'), 'written through b\n', 'a write through b shows through a')
  t.equal(sh('find . -samefile a | sort', m).stdout, './a\n./b\n', 'find -samefile a lists both names')
  t.equal(statSync(join(d, 'a')).ino, statSync(join(d, 'b')).ino, 'one file on the node\'s disk too')
})

t.test('inode numbers are stable: the same after the kernel dropped its caches and after many other lookups', async (t) => {
  const { m, d } = await folder('inodes')
  writeFileSync(join(m, 'f'), 'x')
  writeFileSync(join(m, 'g'), 'y')
  const ino = (): string => sh('stat -c %i f', m).stdout.trim()
  const first = ino()
  t.not(first, '0', 'a real inode number')
  t.not(first, sh('stat -c %i g', m).stdout.trim(), 'another file has another number')
  t.equal(sh('sync; echo 3 > /proc/sys/vm/drop_caches').status, 0, 'the kernel dropped its caches')
  t.equal(ino(), first, 'the same number after drop_caches')
  mkdirSync(join(d, 'many'))
  for (let i = 0; i < 3000; i++) writeFileSync(join(d, 'many', `n${i}`), '')
  const looked = sh('find many -type f -exec stat -c %i {} + | wc -l', m)
  t.equal(looked.stdout.trim(), '3000', '3,000 other files looked up')
  t.equal(ino(), first, 'the same number after 3,000 other lookups')
})

t.test('mkfifo makes a fifo in a volume, and data passes through it', async (t) => {
  const { m, d } = await folder('fifos')
  const r = sh('mkfifo p', m)
  t.equal(r.status, 0, `mkfifo p: ${said(r)}`)
  t.equal(sh('stat -c %F p', m).stdout.trim(), 'fifo', 'stat says fifo')
  t.ok(lstatSync(join(d, 'p')).isFIFO(), 'a fifo on the node\'s disk')
  const through = sh('(echo through the pipe > p &) ; timeout 10 cat p', m)
  t.equal(through.stdout, 'through the pipe\n', 'a writer and a reader meet in it')
})

t.test('a unix socket can be bound in a volume, and a client connects to it', async (t) => {
  const { m, d } = await folder('sockets')
  const r = py(`
import os, socket, sys
os.chdir(sys.argv[1])
s = socket.socket(socket.AF_UNIX); s.bind('sock'); s.listen(1)
c = socket.socket(socket.AF_UNIX); c.connect('sock'); c.sendall(b'hello')
a, _ = s.accept(); print(a.recv(5).decode())
`, m)
  t.equal(r.stdout, 'hello\n', `bind, connect, send: ${said(r)}`)
  t.equal(sh('stat -c %F sock', m).stdout.trim(), 'socket', 'stat says socket')
  t.ok(lstatSync(join(d, 'sock')).isSocket(), 'a socket on the node\'s disk')
  const onNode = py(`
import errno, os, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(os.path.join(sys.argv[1], 'node.sock')); s.listen(1)
for i in range(50):
    if os.path.exists(os.path.join(sys.argv[2], 'node.sock')): break
    time.sleep(0.05)
c = socket.socket(socket.AF_UNIX)
try:
    c.connect(os.path.join(sys.argv[2], 'node.sock')); print('connected')
except OSError as e:
    print(errno.errorcode[e.errno])
`, d, m)
  t.equal(onNode.stdout, 'ECONNREFUSED\n', `a socket bound on the node is not reached through the mount: ${said(onNode)}`)
})

t.test('mknod of a device is refused with EPERM (Operation not permitted)', async (t) => {
  const { m, d } = await folder('devices')
  const r = py(`
import errno, os, stat, sys
try:
    os.mknod(sys.argv[1], stat.S_IFCHR | 0o600, os.makedev(1, 3)); print('made')
except OSError as e:
    print(errno.errorcode[e.errno])
`, join(m, 'null'))
  t.equal(r.stdout, 'EPERM\n', said(r))
  t.throws(() => lstatSync(join(d, 'null')), 'nothing made on the node\'s disk')
})

t.test('touch -m sets the modification time to the nanosecond and keeps the access time', async (t) => {
  const { m, d } = await folder('mtime')
  writeFileSync(join(m, 'f'), 'x')
  t.equal(sh('touch -d @1500000000 f && touch -m -d @1000000000.123456789 f', m).status, 0)
  t.equal(sh('stat -c "%y|%x" f', m).stdout.trim(), '2001-09-09 01:46:40.123456789 +0000|2017-07-14 02:40:00.000000000 +0000', 'through the mount')
  const s = statSync(join(d, 'f'), { bigint: true })
  t.equal(s.mtimeNs, 1000000000123456789n, 'the modification time on the node\'s disk')
  t.equal(s.atimeNs, 1500000000000000000n, 'the access time kept on the node\'s disk')
})

t.test('touch -a sets the access time to the nanosecond and keeps the modification time', async (t) => {
  const { m, d } = await folder('atime')
  writeFileSync(join(m, 'f'), 'x')
  t.equal(sh('touch -d @1500000000 f && touch -a -d @1000000000.987654321 f', m).status, 0)
  t.equal(sh('stat -c "%x|%y" f', m).stdout.trim(), '2001-09-09 01:46:40.987654321 +0000|2017-07-14 02:40:00.000000000 +0000', 'through the mount')
  const s = statSync(join(d, 'f'), { bigint: true })
  t.equal(s.atimeNs, 1000000000987654321n, 'the access time on the node\'s disk')
  t.equal(s.mtimeNs, 1500000000000000000n, 'the modification time kept on the node\'s disk')
})

t.test('touch -h sets a symbolic link\'s own times to the nanosecond, not its target\'s', async (t) => {
  const { m, d } = await folder('linktimes')
  writeFileSync(join(m, 'target'), 'x')
  t.equal(sh('ln -s target l && touch -d @1500000000 target', m).status, 0)
  const r = sh('touch -h -d @1400000000.123456789 l && touch -h -m -d @1000000000.5 l', m)
  t.equal(r.status, 0, `touch -h: ${said(r)}`)
  t.equal(sh('stat -c "%y" l', m).stdout.trim(), '2001-09-09 01:46:40.500000000 +0000', 'the link\'s modification time through the mount')
  t.equal(sh('stat -c %y target', m).stdout.trim(), '2017-07-14 02:40:00.000000000 +0000', 'the target keeps its time')
  t.equal(lstatSync(join(d, 'l'), { bigint: true }).mtimeNs, 1000000000500000000n, 'the link\'s modification time on the node\'s disk')
})

t.test('touch -h -m keeps a link\'s access time', async (t) => {
  const { m, d } = await folder('linkatime')
  const r = sh('ln -s nowhere l && touch -h -d @1400000000 l && touch -h -m -d @1000000000.5 l', m)
  t.equal(r.status, 0, said(r))
  t.equal(lstatSync(join(d, 'l'), { bigint: true }).atimeNs, 1400000000000000000n, 'the link\'s access time kept on the node\'s disk')
})

t.test('rename over an existing file replaces it (mv and os.replace)', async (t) => {
  const { m, d } = await folder('rename')
  writeFileSync(join(m, 'a'), 'new\n')
  writeFileSync(join(m, 'b'), 'old, longer\n')
  t.equal(sh('mv a b', m).status, 0)
  t.equal(readFileSync(join(m, 'b'), 'utf8'), 'new\n', 'b holds what a held')
  t.same(await readdir(m), ['b'], 'a is gone')
  writeFileSync(join(m, 'c'), 'third\n')
  t.equal(py('import os; os.replace("rename/c", "rename/b")').status, 0)
  t.equal(readFileSync(join(m, 'b'), 'utf8'), 'third\n', 'os.replace too')
  t.equal(readFileSync(join(d, 'b'), 'utf8'), 'third\n', 'on the node\'s disk')
})

t.test('truncate and ftruncate shorten and lengthen a file (os.truncate, os.ftruncate)', async (t) => {
  const { m, d } = await folder('truncate')
  const f = join(m, 'f')
  writeFileSync(f, 'abcdefghij')
  const r = py(`
import os, sys
p = sys.argv[1]
os.truncate(p, 3); print(open(p, 'rb').read())
os.truncate(p, 6); print(open(p, 'rb').read())
fd = os.open(p, os.O_RDWR)
os.ftruncate(fd, 2); print(os.fstat(fd).st_size, os.pread(fd, 100, 0))
os.ftruncate(fd, 5); print(os.fstat(fd).st_size, os.pread(fd, 100, 0))
os.close(fd)
`, f)
  t.equal(r.stdout, "b'abc'\nb'abc\\x00\\x00\\x00'\n2 b'ab'\n5 b'ab\\x00\\x00\\x00'\n", said(r))
  t.equal(statSync(join(d, 'f')).size, 5, 'the size on the node\'s disk')
})

/** A Python appender: opens argv[1] with O_APPEND (and O_CREAT), writes argv[3] lines tagged argv[2], one write each, pausing argv[4] s every 10. */
const APPENDER = `
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
for i in range(int(sys.argv[3])):
    os.write(fd, f'{sys.argv[2]} {i:04d}\\n'.encode())
    if i % 10 == 0: time.sleep(float(sys.argv[4]))
os.close(fd)
`
/** Lines of `text` missing from what two appenders tagged A and B, `n` each, wrote. */
const missingLines = (text: string, n: number): string[] => {
  const have = new Set(text.split('\n'))
  return ['A', 'B'].flatMap((tag) => Array.from({ length: n }, (_, i) => `${tag} ${String(i).padStart(4, '0')}`)).filter((l) => !have.has(l))
}
const runAppender = (cwd: string, file: string, tag: string, n: number, pause = 0.001): Promise<number | null> => new Promise((resolve) => {
  const child = spawn('python3', ['-c', APPENDER, file, tag, String(n), String(pause)], { cwd, stdio: 'ignore' })
  child.on('exit', (code) => resolve(code))
})

t.test('O_APPEND from two processes at once through the mount: no line lost', async (t) => {
  const { m, d } = await folder('append')
  writeFileSync(join(m, 'log'), 'start\n')
  const codes = await Promise.all([runAppender(m, join(m, 'log'), 'A', 1000), runAppender(m, join(m, 'log'), 'B', 1000)])
  t.same(codes, [0, 0])
  const text = readFileSync(join(d, 'log'), 'utf8')
  const missing = missingLines(text, 1000)
  t.equal(missing.length, 0, `every line of both on the node's disk (missing: ${missing.slice(0, 5).join(', ') || 'none'})`)
  t.equal(text.split('\n').length, 2002, 'and nothing else but the first line')
  t.equal(readFileSync(join(m, 'log'), 'utf8'), text, 'the same through the mount')
})

t.test('O_APPEND on a new file, through the mount and on the node at once: no line lost', async (t) => {
  const { m, d } = await folder('append-new')
  // Both write over half a second, so their lines interleave on the node's disk.
  const mounted = runAppender(m, join(m, 'log'), 'A', 500, 0.01)
  while (!statSync(join(d, 'log'), { throwIfNoEntry: false })) await sleep(5)
  const onNode = runAppender(d, join(d, 'log'), 'B', 500, 0.01)
  t.same(await Promise.all([mounted, onNode]), [0, 0])
  const missing = missingLines(readFileSync(join(d, 'log'), 'utf8'), 500)
  t.equal(missing.length, 0, `every line of both on the node's disk (missing: ${missing.slice(0, 5).join(', ') || 'none'}${missing.length > 5 ? ', ...' : ''})`)
})

const diskHasXattrs = py('import os, sys; os.setxattr(sys.argv[1], "user.probe", b"1"); os.removexattr(sys.argv[1], "user.probe")', disk).status === 0
t.test('user.* extended attributes: set, get, list and remove (os.setxattr and friends)', { skip: !diskHasXattrs && 'the node\'s file system has no user xattrs' }, async (t) => {
  const { m, d } = await folder('xattrs')
  writeFileSync(join(m, 'f'), 'x')
  const set = py('import os, sys; os.setxattr(sys.argv[1], "user.herds", b"hello")', join(m, 'f'))
  t.equal(set.status, 0, `setxattr: ${said(set)}`)
  t.equal(py('import os, sys; print(os.getxattr(sys.argv[1], "user.herds").decode())', join(d, 'f')).stdout, 'hello\n', 'on the node\'s disk')
  const r = py(`
import errno, os, sys
p = sys.argv[1]
print(os.getxattr(p, 'user.herds').decode())
print(','.join(sorted(os.listxattr(p))))
os.removexattr(p, 'user.herds')
try:
    os.getxattr(p, 'user.herds'); print('still there')
except OSError as e:
    print(errno.errorcode[e.errno])
print(','.join(sorted(os.listxattr(p))) or '(none)')
`, join(m, 'f'))
  t.equal(r.stdout, 'hello\nuser.herds\nENODATA\n(none)\n', said(r))
})

t.test('attacker: attributes outside user.* are refused, and none reaches the node\'s disk', { skip: !diskHasXattrs && 'the node\'s file system has no user xattrs' }, async (t) => {
  const { m, d } = await folder('xattr-namespaces')
  writeFileSync(join(m, 'f'), 'x')
  const r = py(`
import errno, os, struct, sys
# A well-formed file capability (every capability, effective), so the kernel itself passes it on.
cap = struct.pack('<IIIII', 0x02000001, 0xffffffff, 0, 0xffffffff, 0)
for name in ['security.capability', 'trusted.overlay.opaque', 'security.selinux']:
    try:
        os.setxattr(sys.argv[1], name, cap); print(name, 'set')
    except OSError as e:
        print(name, errno.errorcode[e.errno])
try:
    os.getxattr(sys.argv[1], 'user.' + 'n' * 300)
except OSError as e:
    print('long name', errno.errorcode[e.errno])
`, join(m, 'f'))
  t.equal(r.stdout, 'security.capability ENOTSUP\ntrusted.overlay.opaque ENOTSUP\nsecurity.selinux ENOTSUP\nlong name ERANGE\n', said(r))
  t.equal(py('import os, sys; print(os.listxattr(sys.argv[1]))', join(d, 'f')).stdout, '[]\n', 'nothing on the node\'s disk')
})

/** renameat2(AT_FDCWD, a, AT_FDCWD, b, flags) through ctypes, printing "ok" or the errno's name. */
const renameat2 = (dir: string, a: string, b: string, flags: number): Ran => py(`
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
os.chdir(sys.argv[1])
r = libc.renameat2(-100, sys.argv[2].encode(), -100, sys.argv[3].encode(), int(sys.argv[4]))
print('ok' if r == 0 else errno.errorcode[ctypes.get_errno()])
`, dir, a, b, String(flags))

t.test('rename with RENAME_NOREPLACE and RENAME_EXCHANGE (renameat2), as on a disk', async (t) => {
  const { m, d } = await folder('rename-flags')
  writeFileSync(join(m, 'a'), 'A')
  writeFileSync(join(m, 'b'), 'B')
  mkdirSync(join(m, 'dir'))
  writeFileSync(join(m, 'dir', 'inside'), 'I')
  t.equal(renameat2(m, 'a', 'b', 1).stdout, 'EEXIST\n', 'no replace: b is taken')
  t.equal(readFileSync(join(d, 'b'), 'utf8'), 'B', 'and b is untouched')
  t.equal(renameat2(m, 'a', 'c', 1).stdout, 'ok\n', 'no replace: c was free')
  t.equal(renameat2(m, 'c', 'dir', 2).stdout, 'ok\n', 'exchange a file and a folder')
  t.equal(readFileSync(join(m, 'c', 'inside'), 'utf8'), 'I', 'the folder is at c now, through the mount')
  t.equal(readFileSync(join(m, 'dir'), 'utf8'), 'A', 'and the file at dir')
  t.equal(readFileSync(join(d, 'dir'), 'utf8'), 'A', 'on the node\'s disk too')
  t.equal(renameat2(m, 'c', 'none', 2).stdout, 'ENOENT\n', 'exchange needs both names')
  const mv = sh('mv --exchange dir c 2>&1 || echo no-exchange-in-mv', m)
  if (!/no-exchange-in-mv|unrecognized/.test(mv.stdout)) t.equal(readFileSync(join(m, 'dir', 'inside'), 'utf8'), 'I', 'mv --exchange')
})

t.test('outside a volume\'s files: synthetic files hold no attributes, and no fifo or exchange where volumes are named', async (t) => {
  const cmd = join(up.nodeDir, 'exec', 'cmd')
  const r = py(`
import errno, os, sys
def tried(what, call):
    try:
        call(); print(what, 'ok')
    except OSError as e:
        print(what, errno.errorcode[e.errno])
tried('list', lambda: print(os.listxattr(sys.argv[1])))
tried('get', lambda: os.getxattr(sys.argv[1], 'user.x'))
tried('set', lambda: os.setxattr(sys.argv[1], 'user.x', b'1'))
tried('mkfifo', lambda: os.mkfifo(os.path.join(sys.argv[2], 'pipe')))
`, cmd, join(up.nodeDir, 'volumes'))
  t.equal(r.stdout, '[]\nlist ok\nget ENODATA\nset ENOTSUP\nmkfifo EPERM\n', said(r))
  await mkdir(join(up.nodeDir, 'volumes', 'other'))
  writeFileSync(join(up.nodeDir, 'volumes', 'other', 'f'), 'f')
  t.equal(renameat2(join(up.nodeDir, 'volumes'), 'posix', 'other/f', 2).stdout, 'EPERM\n', 'a volume is not exchanged with a file in another')
  t.ok(statSync(join(disk, 'links')).isDirectory(), 'the volume is as it was')
})

t.test('fsync and fdatasync of a file written through the mount reach the node\'s disk', async (t) => {
  const { m, d } = await folder('fsync')
  const r = py(`
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b'kept'); os.fsync(fd)
with open(sys.argv[2]) as f: print(f.read())
os.write(fd, b' too'); os.fdatasync(fd)
with open(sys.argv[2]) as f: print(f.read())
os.close(fd)
`, join(m, 'f'), join(d, 'f'))
  t.equal(r.stdout, 'kept\nkept too\n', `the node's disk has each write once fsync returns: ${said(r)}`)
  t.equal(sh('sync f && echo synced', m).stdout, 'synced\n', 'sync(1) on a file')
})

t.test('modes are as given: open with 0777 under umask 000 gives 0777, chmod 640 gives 0640', async (t) => {
  const { m, d } = await folder('modes')
  const r = py(`
import os, sys
os.umask(0)
os.close(os.open(sys.argv[1] + '/f', os.O_CREAT | os.O_WRONLY, 0o777))
os.mkdir(sys.argv[1] + '/sub', 0o777)
print(oct(os.stat(sys.argv[1] + '/f').st_mode & 0o7777), oct(os.stat(sys.argv[1] + '/sub').st_mode & 0o7777))
os.chmod(sys.argv[1] + '/f', 0o640)
print(oct(os.stat(sys.argv[1] + '/f').st_mode & 0o7777))
`, m)
  t.equal(r.stdout, '0o777 0o777\n0o640\n', said(r))
  t.equal(statSync(join(d, 'f')).mode & 0o7777, 0o640, 'on the node\'s disk')
  t.equal(statSync(join(d, 'sub')).mode & 0o7777, 0o777, 'the folder on the node\'s disk')
})

t.test('chown to the mount\'s own user and group works', async (t) => {
  const { m, d } = await folder('owners')
  writeFileSync(join(m, 'f'), 'x')
  const r = py('import os, sys; os.chown(sys.argv[1], os.getuid(), os.getgid()); s = os.stat(sys.argv[1]); print(s.st_uid == os.getuid(), s.st_gid == os.getgid())', join(m, 'f'))
  t.equal(r.stdout, 'True True\n', said(r))
  t.equal(sh(`chown ${process.getuid!()}:${process.getgid!()} f`, m).status, 0, 'chown(1) too')
  // As tar does it: a write, then fchown on the open file: fstat after it sees the write, here and on the node.
  const w = py('import os, sys; fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600); os.write(fd, b"x" * 5); os.utime(fd, ns=(1, 2)); os.write(fd, b"y" * 5); os.fchown(fd, os.getuid(), os.getgid()); print(os.fstat(fd).st_size, os.fstat(fd).st_mtime_ns != 2); os.close(fd); print(os.stat(sys.argv[1]).st_size)', join(m, 'g'))
  t.equal(w.stdout, '10 True\n10\n', said(w))
  t.equal(statSync(join(d, 'g')).size, 10, 'on the node\'s disk')
})

t.test('a name of 255 bytes works; 256 bytes gives ENAMETOOLONG', async (t) => {
  const { m, d } = await folder('names')
  const long = 'n'.repeat(255)
  writeFileSync(join(m, long), 'long name\n')
  t.equal(readFileSync(join(m, long), 'utf8'), 'long name\n')
  t.same(await readdir(m), [long], 'listed')
  t.ok(statSync(join(d, long)).isFile(), 'on the node\'s disk')
  const r = py(`
import errno, os, sys
for make in (lambda p: os.close(os.open(p, os.O_CREAT | os.O_WRONLY)), os.mkdir):
    try:
        make(sys.argv[1]); print('made')
    except OSError as e:
        print(errno.errorcode[e.errno])
`, join(m, 'n'.repeat(256)))
  t.equal(r.stdout, 'ENAMETOOLONG\nENAMETOOLONG\n', `a file, then a folder: ${said(r)}`)
})

t.test('a deep path (31 nested folders, over 3,000 bytes below the volume) works', async (t) => {
  const { m, d } = await folder('deep')
  const rel = Array.from({ length: 31 }, (_, i) => `${String(i).padStart(2, '0')}${'d'.repeat(97)}`).join('/')
  t.ok(rel.length > 3000, `${rel.length} bytes`)
  await mkdir(join(m, rel), { recursive: true })
  writeFileSync(join(m, rel, 'bottom.txt'), 'at the bottom\n')
  t.equal(readFileSync(join(m, rel, 'bottom.txt'), 'utf8'), 'at the bottom\n')
  t.equal(readFileSync(join(d, rel, 'bottom.txt'), 'utf8'), 'at the bottom\n', 'on the node\'s disk')
  t.equal(sh('find . -name bottom.txt | wc -l', m).stdout.trim(), '1', 'find reaches it')
  t.equal(sh('rm -r 00*', m).status, 0, 'rm -r removes it all')
  t.same(await readdir(m), [])
})

t.test('an unlinked open file stays readable, leaves no .fuse_hidden name, and its folder can be removed', async (t) => {
  const { m } = await folder('unlinked')
  await mkdir(join(m, 'dir'))
  const r = py(`
import json, os, sys
d = sys.argv[1]
fd = os.open(d + '/f', os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b'still here')
os.unlink(d + '/f')
listing = os.listdir(d)
data = os.pread(fd, 100, 0)
size = os.fstat(fd).st_size
try:
    os.rmdir(d); removed = 'removed'
except OSError as e:
    removed = os.strerror(e.errno)
os.close(fd)
print(json.dumps({'listing': listing, 'data': data.decode(), 'size': size, 'rmdir': removed}))
`, join(m, 'dir'))
  t.same(JSON.parse(r.stdout || '{}'), { listing: [], data: 'still here', size: 10, rmdir: 'removed' }, said(r))
  t.same(await readdir(m), [], 'nothing left behind after the close')
})

t.test('a folder\'s mtime advances right after a child is created or removed through the mount', async (t) => {
  const { m } = await folder('dirtimes')
  await mkdir(join(m, 'd'))
  const mtime = async (): Promise<number> => (await stat(join(m, 'd'))).mtimeMs
  const old = Date.parse('2001-09-09T01:46:40Z')
  const setOld = (): void => { t.equal(sh('touch -d @1000000000 d', m).status, 0) }
  setOld()
  t.equal(await mtime(), old, 'set to 2001')
  writeFileSync(join(m, 'd', 'child'), 'x')
  t.ok(await mtime() > old, 'advanced after a create')
  setOld()
  t.equal(sh('rm d/child', m).status, 0)
  t.ok(await mtime() > old, 'advanced after a remove')
  setOld()
  await mkdir(join(m, 'd', 'sub'))
  t.ok(await mtime() > old, 'advanced after a mkdir')
})

t.test('python3 mmap of a file in a volume: a shared mapping reads and writes it', async (t) => {
  const { m, d } = await folder('mmap')
  writeFileSync(join(m, 'f'), '0123456789'.repeat(410))
  const r = py(`
import mmap, sys
with open(sys.argv[1], 'r+b') as f:
    m = mmap.mmap(f.fileno(), 0)
    print(m[:10].decode(), len(m))
    m[0:5] = b'HELLO'
    m.flush(); m.close()
`, join(m, 'f'))
  t.equal(r.stdout, '0123456789 4100\n', `read through the mapping: ${said(r)}`)
  t.equal(readFileSync(join(m, 'f'), 'utf8').slice(0, 10), 'HELLO56789', 'the write through the mapping, through the mount')
  t.equal(readFileSync(join(d, 'f'), 'utf8').slice(0, 10), 'HELLO56789', 'and on the node\'s disk')
})

const hasSqlite = spawnSync('sh', ['-c', 'command -v sqlite3']).status === 0
/** The same SQL through the sqlite3 command where it is installed, else through python3's sqlite3 module (autocommit). */
const sqlite = (db: string, statements: string[]): Ran => hasSqlite
  ? spawnSync('sqlite3', [db], { input: statements.join('\n') + '\n', encoding: 'utf8', timeout: 180_000 })
  : spawnSync('python3', ['-c', `
import json, sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
for s in json.loads(sys.stdin.read()):
    for row in c.execute(s).fetchall(): print('|'.join(map(str, row)))
`, db], { input: JSON.stringify(statements), encoding: 'utf8', timeout: 180_000 })
t.test(`SQLite in WAL mode (${hasSqlite ? 'the sqlite3 command' : 'python3\'s sqlite3'}): 1,000 autocommit inserts, then integrity_check says ok`, async (t) => {
  const { m } = await folder('sqlite')
  const db = join(m, 'app.db')
  const inserts = Array.from({ length: 1000 }, (_, i) => `INSERT INTO t VALUES (${i});`)
  const r = sqlite(db, ['PRAGMA journal_mode=WAL;', 'CREATE TABLE t(x);', ...inserts, 'SELECT count(*) FROM t;', 'PRAGMA integrity_check;'])
  t.equal(r.stdout, 'wal\n1000\nok\n', said(r))
  const again = sqlite(db, ['PRAGMA journal_mode;', 'SELECT count(*) FROM t;', 'PRAGMA integrity_check;'])
  t.equal(again.stdout, 'wal\n1000\nok\n', `and from a new process: ${said(again)}`)
})

t.test('os.posix_fallocate makes the file that size', async (t) => {
  const { m, d } = await folder('fallocate')
  const r = py(`
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o644)
os.posix_fallocate(fd, 0, 1048576)
print(os.fstat(fd).st_size)
os.close(fd)
`, join(m, 'f'))
  t.equal(r.stdout, '1048576\n', said(r))
  t.equal(statSync(join(m, 'f')).size, 1048576, 'stat through the mount')
  t.equal(statSync(join(d, 'f')).size, 1048576, 'on the node\'s disk')
})

t.test('a file changed on the node\'s disk is seen through the mount within 0.5 s: its size, its content, a new name', async (t) => {
  const { m, d } = await folder('fresh')
  writeFileSync(join(m, 'note'), 'first\n')
  t.equal((await stat(join(m, 'note'))).size, 6, 'seen once, so kept')
  t.same(await readdir(m), ['note'])
  writeFileSync(join(d, 'note'), 'second, longer\n')
  writeFileSync(join(d, 'added'), 'new\n')
  const started = Date.now()
  const seen = async (): Promise<boolean> =>
    (await stat(join(m, 'note'))).size === 15 && (await readdir(m)).includes('added') && (await readFile(join(m, 'note'), 'utf8')) === 'second, longer\n'
  let ok = await seen()
  while (!ok && Date.now() - started < 500) { await sleep(10); ok = await seen() }
  t.ok(ok, `the new size, content and name through the mount (${ok ? `after ${Date.now() - started} ms` : 'not within 0.5 s'})`)
})
