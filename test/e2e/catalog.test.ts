// An agent with nothing but the mount (issue 5): from the root README, through the catalog and
// its schemas, to a sandbox made through control, a job run in it, and its result.
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { herdsUp } from './harness.js'

const up = await herdsUp(t)
const at = (path: string): string => join(up.mountpoint, path)
const read = (path: string): Promise<string> => readFile(at(path), 'utf8')

/** The first capture of `pattern` in `text`, or a failure that says what was missing. */
function follow (text: string, pattern: RegExp, what: string): string {
  const match = text.match(pattern)
  if (!match) throw new Error(`the documentation does not say ${what}:\n${text}`)
  return match[1]
}

t.test('README → catalog → schema → control → sandbox → job → result, by documented paths only', async (t) => {
  const root = await read('README.md')
  const catalogReadme = follow(root, /^- (\.herds\/catalog\/README\.md)/m, 'where the catalog is')
  const catalog = await read(catalogReadme)
  const nodesFile = follow(catalog, /cat (\.herds\/catalog\/nodes\.json)/, 'where the nodes are listed')
  const node = JSON.parse(await read(nodesFile)).find((n: { online: boolean }) => n.online).name as string
  const [, schemaName, controlFile] = catalog.match(/(schemas\/\S+\.json)\s+(\/\.herds\/control\/sandboxes\/create)/) ?? []
  t.ok(schemaName && controlFile, 'the catalog names the schema of sandboxes/create')
  const schema = JSON.parse(await read(`.herds/catalog/${schemaName}`))
  t.same(schema.required.sort(), ['name', 'node'], 'the schema says what is required')
  t.equal(schema.additionalProperties, false)
  t.ok(schema.properties.config.properties.network, 'and what a config may hold')
  const request = { node, name: 'agent', config: { network: false } }
  for (const key of schema.required) t.ok(key in request)
  await writeFile(at(controlFile), JSON.stringify(request))
  const sandbox = follow(catalog, /mkdir (nodes\/<node>\/sandboxes\/)web/, 'where sandboxes are').replace('<node>', node) + 'agent'
  const status = JSON.parse(await read(`${sandbox}/status.json`))
  t.match(status, { state: 'ready', running: 0 }, 'the sandbox is there, running nothing')
  t.equal(JSON.parse(await read(`${sandbox}/config.json`)).network, false, 'with the config asked for')
  const cmd = follow(catalog, /> nodes\/<node>\/sandboxes\/web\/(exec\/cmd)/, 'how to run in a sandbox')
  await writeFile(at(`${sandbox}/${cmd}`), 'echo "from $(basename $(pwd)) in the sandbox"\n')
  t.equal(await read(`${sandbox}/exec/exit`), '0\n')
  t.equal(await read(`${sandbox}/exec/stdout`), 'from workspace in the sandbox\n')
})

t.test('the default node runs commands at .herds/venoms/run without a name', async (t) => {
  const catalog = await read('.herds/catalog/README.md')
  const cmd = follow(catalog, /> (\.herds\/venoms\/run\/cmd)/, 'how to run on the default node')
  await writeFile(at(cmd), 'hostname; echo $HERDS_NODE_CHECK\n')
  t.equal(await read('.herds/venoms/run/exit'), '0\n')
  t.equal(JSON.parse(await read('.herds/venoms/run/status')).cmd, 'hostname; echo $HERDS_NODE_CHECK')
  const jobs = JSON.parse(await read('.herds/catalog/jobs.json'))
  t.equal(jobs[0].node, up.name, 'it ran on the default node')
})

t.test('health.json, venoms/run.md and every schema are there and well-formed', async (t) => {
  const health = JSON.parse(await read('.herds/catalog/health.json'))
  t.match(health, { version: /^\d+\.\d+\.\d+/, nodes: { online: 1 }, mounts: 1 })
  t.ok(health.uptimeSeconds >= 0)
  t.match(await read('.herds/catalog/venoms/run.md'), /echo 'make test' > cmd/)
  const catalog = await read('.herds/catalog/README.md')
  for (const name of catalog.match(/schemas\/[\w-]+\.json/g) ?? []) {
    const schema = JSON.parse(await read(`.herds/catalog/${name}`))
    t.equal(schema.type, 'object', `${name} describes an object`)
    t.ok(schema.description, `${name} says which file it is for`)
  }
})
