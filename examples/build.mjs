#!/usr/bin/env node
// Runs a build on a chosen node with the SDK and collects its output: a sandbox is made,
// the sources written into its workspace, `make` run in it with its output streamed here,
// and the built program run. Everything is file operations on the contract underneath.
//
//   node examples/build.mjs [--node NAME]
//   (the host: $HERDS_URL, else ws://127.0.0.1:7077; the token: $HERDS_TOKEN, else this
//    machine's admin token, as `herds token show` prints it)
import { readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Herds } from 'herds'

const { values } = parseArgs({ options: { node: { type: 'string' } } })
const url = process.env.HERDS_URL || 'ws://127.0.0.1:7077'
const home = process.env.HERDS_HOME || join(homedir(), '.herds')
const token = process.env.HERDS_TOKEN || (await readFile(join(home, 'host', 'admin.token'), 'utf8')).trim()

const herds = await Herds.connect({ url, token })
try {
  const node = values.node ? herds.node(values.node) : await herds.pick()
  console.log(`building on ${node.name}`)
  const box = await node.sandbox('build-example', { network: false })
  await box.writeFile('hello.c', '#include <stdio.h>\nint main(void) { printf("hello from the herd\\n"); return 0; }\n')
  await box.writeFile('Makefile', 'hello: hello.c\n\tcc -O2 -o hello hello.c\n')

  let output = ''
  const build = box.stream('make')
  for (let step = await build.next(); ; step = await build.next()) {
    if (step.done) {
      console.log(`make: exit ${step.value.exitCode} in ${step.value.durationMs} ms`)
      if (step.value.exitCode !== 0) process.exitCode = 1
      break
    }
    output += step.value.data
    process.stdout.write(step.value.data) // live, as the node prints it
  }
  if (!process.exitCode) {
    const run = await box.run('./hello')
    console.log(`./hello says: ${run.stdout.trim()}`)
    console.log(`collected ${output.length} bytes of build output; the workspace holds: ${(await box.readdir()).sort().join(' ')}`)
  }
  await box.remove()
} finally {
  herds.close()
}
