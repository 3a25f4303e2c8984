// Runs the test suite with tap and ends with one plain line: "N passed, N failed".
import { spawn } from 'node:child_process'

const child = spawn('npx', ['--no-install', 'tap', '--reporter=tap', ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'inherit'] })
let tail = ''
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk)
  tail = (tail + chunk.toString()).slice(-4096)
})
child.on('exit', (code, signal) => {
  // tap closes with a line like "# { total: 42, pass: 41, fail: 1, skip: 0 }".
  const summary = tail.match(/# \{ total: (\d+)([^}]*)\}/)
  const count = (name) => Number(summary?.[2].match(new RegExp(`${name}: (\\d+)`))?.[1] ?? 0)
  const failed = summary ? count('fail') : 1
  const passed = summary ? count('pass') : 0
  const skipped = summary ? count('skip') + count('todo') : 0
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`)
  process.exit(code ?? (signal ? 1 : 0))
})
