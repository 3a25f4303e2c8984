// Descriptor exhaustion (issue 10, point 3): a read token opens one volume file thousands of
// times. The host refuses opens past the per-connection limit with EMFILE, and when the clients
// leave, every descriptor the node opened for them is closed again: none is dropped on the way.
import { readdirSync } from 'node:fs'
import t from 'tap'
import { connectHost, type HostConnection } from '../../mount/client.js'
import { readWhole, writeWhole } from '../../tree/bind.js'
import { MAX_OPEN_PER_CONNECTION } from '../../tree/handles.js'
import { startHostAndNode } from '../e2e/harness.js'

const { node, url, admin } = await startHostAndNode(t)

/** The node's open descriptors, as the kernel counts them. */
const nodeFds = (): number => readdirSync(`/proc/${node.child.pid!}/fd`).length

/** Polls `check` until it holds or the deadline passes; returns the last value seen. */
async function until (read: () => number, check: (n: number) => boolean, ms: number): Promise<number> {
  const deadline = Date.now() + ms
  for (;;) {
    const n = read()
    if (check(n) || Date.now() > deadline) return n
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const setup = await connectHost(url, { token: admin })
await setup.tree.mkdir('/nodes/studio/volumes/v', 0o755)
const { fh: made } = await setup.tree.create('/nodes/studio/volumes/v/f', 0o644)
await setup.tree.write('/nodes/studio/volumes/v/f', made, 0, Buffer.from('data'))
await setup.tree.release('/nodes/studio/volumes/v/f', made)
await writeWhole(setup.tree, '/.herds/control/tokens/create', Buffer.from(JSON.stringify({ name: 'reader', scope: 'read' })))
const reader = (await readWhole(setup.tree, '/.herds/control/tokens/reader/secret')).toString().trim()
setup.close()

/** Opens the file `count` times, 64 at a time; resolves with how many opens each error refused. */
async function openMany (conn: HostConnection, count: number): Promise<{ opened: number, errors: Record<string, number> }> {
  let next = 0
  let opened = 0
  const errors: Record<string, number> = {}
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next++ < count) {
      try {
        await conn.remote.open('/nodes/studio/volumes/v/f', 0)
        opened++
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'unknown'
        errors[code] = (errors[code] ?? 0) + 1
      }
    }
  }))
  return { opened, errors }
}

t.test('opens past the limit get EMFILE, and the node closes every descriptor when clients leave', async (t) => {
  const baseline = await until(nodeFds, () => false, 500)
  const first = await connectHost(url, { token: reader })
  const second = await connectHost(url, { token: reader })
  t.teardown(() => { first.close(); second.close() })
  const a = await openMany(first, MAX_OPEN_PER_CONNECTION + 100)
  t.equal(a.opened, MAX_OPEN_PER_CONNECTION, `one connection holds at most ${MAX_OPEN_PER_CONNECTION} files open`)
  t.same(a.errors, { EMFILE: 100 }, 'the opens past the limit are refused with EMFILE')
  await t.rejects(first.remote.open('/nodes/studio/volumes/v/f', 0), { code: 'EMFILE', message: /files open/ })
  const b = await openMany(second, MAX_OPEN_PER_CONNECTION)
  t.equal(b.opened, MAX_OPEN_PER_CONNECTION, 'another connection has a limit of its own')
  const held = nodeFds()
  t.ok(held >= baseline + 2 * MAX_OPEN_PER_CONNECTION, `the node holds ${held} descriptors (${baseline} before)`)
  first.close()
  second.close()
  const started = Date.now()
  const after = await until(nodeFds, (n) => n <= baseline + 2, 60_000)
  t.comment(`node descriptors: ${baseline} before, ${held} with ${2 * MAX_OPEN_PER_CONNECTION} files open, ${after} ${Date.now() - started} ms after the clients left`)
  t.ok(after <= baseline + 2, `back to the baseline: ${after} open, ${baseline} before`)
})

t.test('after the clients left, a connection can open files again', async (t) => {
  const again = await connectHost(url, { token: reader })
  t.teardown(() => again.close())
  const fh = await again.remote.open('/nodes/studio/volumes/v/f', 0)
  t.equal(Buffer.from(await again.remote.read('/nodes/studio/volumes/v/f', fh, 0, 10)).toString(), 'data')
  await again.remote.release('/nodes/studio/volumes/v/f', fh)
})
