// herds shell as a person uses it (issue 15): typed into a real terminal (a tmux pane, driven by
// send-keys and read by capture-pane) against a real host and node.
import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { HERDS_BIN, herdsUp, startHostAndNode, tempDir } from '../e2e/harness.js'

const OUTER = 'outer> '

interface Pane {
  /** Types text (literally) and, unless told not to, Enter. */
  type (text: string, enter?: boolean): void
  /** Sends tmux key names: C-c, Left, Escape. */
  keys (...names: string[]): void
  /** The screen as text (with its escape sequences when `escapes`). */
  screen (escapes?: boolean): string
  /** Waits until the screen matches, and gives it. */
  waitFor (pattern: RegExp, escapes?: boolean): Promise<string>
  resize (cols: number, rows: number): void
  /** The pid of the pane's own shell. */
  pid (): number
  kill (): void
}

/** A tmux server of this test's own, its pane 100×30 running bash with a known prompt and herds' environment. */
function tmuxPane (t: Test, env: Record<string, string>): Pane {
  const socket = `herds-test-${process.pid}-${Math.random().toString(36).slice(2)}`
  const tmux = (...args: string[]): string => execFileSync('tmux', ['-L', socket, '-f', '/dev/null', ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'], // a failure is thrown with its words, not printed into the test's output
    env: { ...process.env, ...env, HERDS: `${process.execPath} ${HERDS_BIN}` },
  })
  const rc = join(tempDir(t), 'bashrc')
  writeFileSync(rc, `PS1='${OUTER}'\n`)
  tmux('new-session', '-d', '-s', 'main', '-x', '100', '-y', '30', `bash --noprofile --rcfile ${rc}`)
  t.teardown(() => { try { tmux('kill-server') } catch { /* gone */ } })
  const screen = (escapes = false): string => tmux('capture-pane', '-p', ...(escapes ? ['-e'] : []), '-t', 'main')
  return {
    type: (text, enter = true) => { tmux('send-keys', '-t', 'main', '-l', text); if (enter) tmux('send-keys', '-t', 'main', 'Enter') },
    keys: (...names) => { tmux('send-keys', '-t', 'main', ...names) },
    screen,
    waitFor: async (pattern, escapes = false) => {
      const deadline = Date.now() + 15_000
      for (;;) {
        const now = screen(escapes)
        if (pattern.test(now)) return now
        if (Date.now() > deadline) throw new Error(`the pane never showed ${String(pattern)}; it shows:\n${now}`)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    },
    resize: (cols, rows) => { tmux('resize-window', '-t', 'main', '-x', String(cols), '-y', String(rows)) },
    pid: () => Number(tmux('display-message', '-p', '-t', 'main', '#{pane_pid}').trim()),
    kill: () => { tmux('kill-session', '-t', 'main') },
  }
}

/** Waits for the remote shell's prompt: the screen's last line ends in # or $ (the pane's own ends in >). */
async function atPrompt (pane: Pane): Promise<void> {
  await pane.waitFor(/[#$] *\n*$/)
}

const missing = ['tmux', 'vim'].filter((program) => spawnSync(program, ['--version']).error !== undefined && spawnSync(program, ['-V']).error !== undefined)
if (missing.length > 0) t.plan(0, `${missing.join(' and ')} not installed (npm test installs them on Debian/Ubuntu as root)`)
else await shellTests()

/** The tests, for a machine with tmux and vim. */
async function shellTests (): Promise<void> {
  const up = await herdsUp(t, 'shellnode')
  const env = { HERDS_URL: up.url, HERDS_TOKEN: up.adminToken, HERDS_HOME: up.home }
  const jobsOnNode = (): Array<Record<string, unknown>> => JSON.parse(readFileSync(join(up.mountpoint, '.herds/catalog/jobs.json'), 'utf8'))

  t.test('a login shell: prompt, size and resize, vim, Ctrl-C, colours, line editing, exit status, a sane terminal', async (t) => {
    const dir = tempDir(t)
    const pane = tmuxPane(t, env)
    await pane.waitFor(/^outer>\s*$/m)
    pane.type(`stty -a > ${dir}/before; $HERDS shell; echo "EXIT=$?"; stty -a > ${dir}/after`)
    await atPrompt(pane)
    t.pass('the prompt appears')
    pane.type('stty size')
    await pane.waitFor(/^30 100$/m)
    pane.resize(120, 40)
    // SIGWINCH and the keys tmux sends next reach herds shell on two paths; a person does not type in the same millisecond.
    await new Promise((resolve) => setTimeout(resolve, 300))
    pane.type('clear; stty size')
    await pane.waitFor(/^40 120$/m)
    t.pass('stty size follows the pane\'s size, and its resize')

    pane.type(`vim -u NONE -N ${dir}/notes.txt`)
    await pane.waitFor(/notes\.txt/)
    pane.type('iwritten in vim', false)
    pane.keys('Escape')
    pane.type(':wq')
    await atPrompt(pane)
    t.equal(readFileSync(join(dir, 'notes.txt'), 'utf8'), 'written in vim\n', 'vim edited and saved the file on the node')

    pane.type('clear')
    await atPrompt(pane)
    pane.type('sleep 100')
    await pane.waitFor(/sleep 100\s*$/m)
    pane.keys('C-c')
    await pane.waitFor(/\^C/)
    pane.type('echo "alive-$((6*7))"')
    await pane.waitFor(/^alive-42$/m)
    t.pass('Ctrl-C ended sleep 100, not the shell')

    pane.type('clear; printf "\\033[31mred\\033[0m\\n"')
    t.match(await pane.waitFor(/\x1b\[31mred/, true), /\x1b\[31mred/, 'a colour arrives intact')
    pane.type('echo helo-edit', false)
    pane.keys('Left', 'Left', 'Left', 'Left', 'Left', 'Left')
    pane.type('l')
    await pane.waitFor(/^hello-edit$/m)
    t.pass('line editing: the cursor moved back and a letter went in')

    pane.type('exit 3')
    await pane.waitFor(/^EXIT=3$/m)
    t.pass('exit 3 makes herds shell exit 3')
    await pane.waitFor(/^outer>\s*$/m)
    // The pane was resized meanwhile: its size aside, every setting is as it was.
    const settings = (file: string): string => readFileSync(join(dir, file), 'utf8').replace(/rows \d+; columns \d+;/, '')
    t.equal(settings('after'), settings('before'), 'stty -a is as it was before')
  })

  t.test('a dropped client leaves the job running; --attach shows the screen again and typing works', async (t) => {
    const first = tmuxPane(t, env)
    await first.waitFor(/^outer>\s*$/m)
    first.type('$HERDS shell')
    await atPrompt(first)
    first.type('echo "marker-$((40+2))"')
    await first.waitFor(/^marker-42$/m)
    const job = jobsOnNode().find((j) => j.state === 'running' && String(j.cmd).includes('exec "$shell" -l'))!
    t.ok(job, 'the shell is a running job of the node')
    first.kill() // the terminal window closes: herds shell gets SIGHUP
    await new Promise((resolve) => setTimeout(resolve, 500))
    t.match(jobsOnNode().find((j) => j.id === job.id), { state: 'running' }, 'the job runs on without its client')

    const second = tmuxPane(t, env)
    await second.waitFor(/^outer>\s*$/m)
    second.type(`$HERDS shell --attach ${String(job.id)}; echo "EXIT=$?"`)
    await second.waitFor(/^marker-42$/m)
    t.pass('the recent output is drawn again')
    second.type('echo "typed-$((1+1))"')
    await second.waitFor(/^typed-2$/m)
    second.type('exit 5')
    await second.waitFor(/^EXIT=5$/m)
    t.pass('typing works, and the exit status is the job\'s')
    second.type(`$HERDS shell --attach ${String(job.id)}; echo "EXIT=$?"`)
    await second.waitFor(/is not running \(exited\).*\nEXIT=255$/m)
  })

  t.test('herds run -t, and a shell in a sandbox is fenced', async (t) => {
    const pane = tmuxPane(t, env)
    await pane.waitFor(/^outer>\s*$/m)
    pane.type('$HERDS run -t -- sh -c \'stty size; test -t 0 && echo on-a-tty; exit 4\'; echo "EXIT=$?"')
    await pane.waitFor(/^30 100\n(.*\n)*on-a-tty\n(.*\n)*EXIT=4$/m)
    t.pass('run -t: a terminal of the pane\'s size, and the exit status')
    pane.type('clear; $HERDS sandbox create shellbox && $HERDS shell --sandbox shellbox; echo "EXIT=$?"')
    await atPrompt(pane)
    pane.type('pwd; touch /etc/herds-shell-test; echo "code=$?"')
    const screen = await pane.waitFor(/^code=\d+$/m)
    t.match(screen, /sandboxes\/shellbox\/workspace\n/, 'it starts in the sandbox\'s workspace')
    t.match(screen, /Read-only file system\n(.*\n)*code=1$/m, 'outside it, the fence refuses writes')
    pane.type('exit')
    await pane.waitFor(/^EXIT=0$/m)
  })

  t.test('bad input: one line, exit 255', async (t) => {
    const pane = tmuxPane(t, env)
    await pane.waitFor(/^outer>\s*$/m)
    pane.type('$HERDS shell --attach 99999; echo "EXIT=$?"')
    await pane.waitFor(/^herds: ENOENT|^herds: .*no job 99999.*\nEXIT=255$|^herds: [^\n]+\nEXIT=255$/m)
    pane.type('clear; $HERDS shell --node nowhere; echo "EXIT=$?"')
    await pane.waitFor(/^herds: [^\n]+\nEXIT=255$/m)
    t.pass('refusals are one line, and herds\' own failure is 255')
  })

  t.test('when the node goes away, one line says so and the terminal is sane', async (t) => {
    const { node, url, admin } = await startHostAndNode(t, 'goner')
    const dir = tempDir(t)
    const pane = tmuxPane(t, { HERDS_URL: url, HERDS_TOKEN: admin, HERDS_HOME: dir })
    await pane.waitFor(/^outer>\s*$/m)
    pane.type(`stty -a > ${dir}/before; $HERDS shell --node goner; echo "EXIT=$?"; stty -a > ${dir}/after`)
    await atPrompt(pane)
    node.signal('SIGKILL')
    const screen = await pane.waitFor(/EXIT=255/)
    t.match(screen, /herds: node goner went away[^\n]*\nEXIT=255/, 'one line says the node went away')
    await pane.waitFor(/^outer>\s*$/m)
    t.equal(readFileSync(join(dir, 'after'), 'utf8'), readFileSync(join(dir, 'before'), 'utf8'), 'the terminal is as it was')
  })
}
