/**
 * herds install / uninstall: keep a herds command running at login, as the
 * system's own service manager does it: a systemd user unit on Linux, a
 * launchd LaunchAgent on macOS.
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { HerdsError } from '../tree/errno.js'

export interface Service {
  /** The unit or agent file. */
  file: string
  /** The secrets file it reads (HERDS_TOKEN), 0600. */
  envFile: string
  content: string
  /** How to start it and stop it with the system's tool. */
  start: [string, string[]][]
  stop: [string, string[]][]
}

const LABEL = 'dev.herds.agent'

/** The service that runs `herds <args>` at login, for this platform. */
export function service (args: string[], env: Record<string, string>): Service {
  const home = homedir()
  const herds = [process.execPath, process.argv[1] ?? 'herds', ...args]
  if (process.platform === 'darwin') {
    const file = join(home, 'Library', 'LaunchAgents', `${LABEL}.plist`)
    const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    const content = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key><string>${LABEL}</string>
  <key>ProgramArguments</key>
  <array>${herds.map((a) => `<string>${esc(a)}</string>`).join('')}</array>
  <key>EnvironmentVariables</key>
  <dict>${Object.entries(env).map(([k, v]) => `<key>${esc(k)}</key><string>${esc(v)}</string>`).join('')}</dict>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>
  <key>StandardOutPath</key><string>${esc(join(home, 'Library', 'Logs', 'herds.log'))}</string>
  <key>StandardErrorPath</key><string>${esc(join(home, 'Library', 'Logs', 'herds.log'))}</string>
</dict>
</plist>
`
    const uid = String(process.getuid?.() ?? 501)
    return {
      file,
      envFile: '',
      content,
      start: [['launchctl', ['bootstrap', `gui/${uid}`, file]]],
      stop: [['launchctl', ['bootout', `gui/${uid}/${LABEL}`]]],
    }
  }
  const config = process.env.XDG_CONFIG_HOME || join(home, '.config')
  const file = join(config, 'systemd', 'user', 'herds.service')
  const envFile = join(config, 'herds', 'service.env')
  const quote = (a: string): string => /^[\w@%+=:,./-]+$/.test(a) ? a : `"${a.replace(/(["\\$])/g, '\\$1')}"`
  const content = `[Unit]
Description=Herds (herds ${args.join(' ')})
After=network-online.target

[Service]
ExecStart=${herds.map(quote).join(' ')}
EnvironmentFile=-${envFile}
Restart=on-failure
RestartSec=5

[Install]
WantedBy=default.target
`
  return {
    file,
    envFile,
    content,
    start: [['systemctl', ['--user', 'daemon-reload']], ['systemctl', ['--user', 'enable', '--now', 'herds.service']]],
    stop: [['systemctl', ['--user', 'disable', '--now', 'herds.service']]],
  }
}

/** Runs the service manager's commands; returns why they could not run, if they could not. */
function runAll (commands: [string, string[]][]): string | undefined {
  for (const [cmd, args] of commands) {
    try {
      execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 15_000 })
    } catch (err) {
      const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim()
      return `${cmd} ${args.join(' ')}: ${stderr || (err as Error).message.split('\n')[0]}`
    }
  }
  return undefined
}

/** Writes the service (and its 0600 env file) and starts it unless `start` is false. */
export async function install (args: string[], env: Record<string, string>, start: boolean, say: (line: string) => void): Promise<void> {
  const svc = service(args, process.platform === 'darwin' ? env : {})
  await mkdir(dirname(svc.file), { recursive: true })
  await writeFile(svc.file, svc.content, { mode: process.platform === 'darwin' ? 0o600 : 0o644 })
  say(`wrote ${svc.file}`)
  if (svc.envFile) {
    await mkdir(dirname(svc.envFile), { recursive: true, mode: 0o700 })
    await writeFile(svc.envFile, Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(''), { mode: 0o600 })
    say(`wrote ${svc.envFile} (0600: ${env.HERDS_TOKEN ? 'it holds HERDS_HOME and the token' : 'it holds HERDS_HOME; no HERDS_TOKEN was set, so the service uses the admin token found there'})`)
  }
  if (!start) return say(`not started (--no-start); start it with: ${svc.start.map(([c, a]) => [c, ...a].join(' ')).join(' && ')}`)
  const failed = runAll(svc.start)
  if (failed) throw new HerdsError('ENOSYS', `the service is written but could not be started (${failed}); start it yourself with: ${svc.start.map(([c, a]) => [c, ...a].join(' ')).join(' && ')}`)
  say(`started; it runs at every login (${process.platform === 'darwin' ? 'launchd' : 'systemd --user'}): herds uninstall removes it`)
}

/** Stops and removes the service. */
export async function uninstall (say: (line: string) => void): Promise<void> {
  const svc = service([], {})
  if (!existsSync(svc.file)) return say(`nothing installed (${svc.file} does not exist)`)
  const failed = runAll(svc.stop)
  if (failed) say(`could not stop it (${failed}); removing its files anyway`)
  await rm(svc.file, { force: true })
  if (svc.envFile) await rm(svc.envFile, { force: true })
  say(`removed ${svc.file}`)
}
