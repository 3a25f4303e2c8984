// The baseline users compare Herds against: ssh for running a command and sshfs
// for files, against an sshd of our own on 127.0.0.1, in a temporary directory.
// Returns undefined (and says why) where sshd or sshfs is not installed.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'

const SSHD = '/usr/sbin/sshd'

async function freePort () {
  const server = createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Starts sshd and mounts `remote` with sshfs at `mnt`; returns how to run a command and how to stop. */
export async function startSshBaseline (root) {
  for (const tool of [SSHD, '/usr/bin/sshfs', '/usr/bin/ssh']) {
    if (!existsSync(tool)) return { missing: `${tool} is not installed (apt-get install openssh-server sshfs)` }
  }
  const dir = join(root, 'ssh')
  mkdirSync(dir, { mode: 0o700 })
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')])
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client_key')])
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')), { mode: 0o600 })
  const port = await freePort()
  writeFileSync(join(dir, 'sshd_config'), [
    `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${join(dir, 'host_key')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`, 'PasswordAuthentication no', 'StrictModes no',
    `PidFile ${join(dir, 'sshd.pid')}`, 'Subsystem sftp internal-sftp', 'UsePAM no',
  ].join('\n') + '\n')
  mkdirSync('/run/sshd', { recursive: true }) // sshd's privilege separation directory
  const sshd = spawn(SSHD, ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: 'ignore' })
  const sshArgs = ['-p', String(port), '-i', join(dir, 'client_key'), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes']
  for (let i = 0; i < 50; i++) {
    try { execFileSync('ssh', [...sshArgs, '127.0.0.1', 'true'], { stdio: 'ignore' }); break } catch { await new Promise((r) => setTimeout(r, 100)) }
  }
  const remote = join(root, 'ssh-remote')
  const mnt = join(root, 'ssh-mnt')
  mkdirSync(remote)
  mkdirSync(mnt)
  execFileSync('sshfs', [`127.0.0.1:${remote}`, mnt, '-p', String(port), '-o', `IdentityFile=${join(dir, 'client_key')}`, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes'])
  return {
    mnt,
    remote,
    run: (cmd) => execFileSync('ssh', [...sshArgs, '127.0.0.1', cmd]),
    stop: () => {
      try { execFileSync('fusermount', ['-uz', mnt], { stdio: 'ignore' }) } catch {}
      sshd.kill('SIGTERM')
    },
  }
}
