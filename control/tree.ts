/**
 * /.herds/control: write-driven administration (DESIGN §6). Each file takes
 * one JSON object, validated with the schemas in ./schemas.ts; the result shows
 * up where it belongs (a sandbox under /nodes/<n>/sandboxes/<name>, a token
 * under tokens/<name>/), so no shared result file is raced.
 */
import type { Journal } from '../host/journal.js'
import type { Registry } from '../host/registry.js'
import { TokenRequestSchema, tokenInfo, type TokenStore } from '../host/tokens.js'
import { writeWhole } from '../tree/bind.js'
import { HerdsError, toHerdsError, type Errno } from '../tree/errno.js'
import { jsonActionFile } from '../tree/json.js'
import { actionFile, jsonFile, textFile, type SynthDir, type SynthFile } from '../tree/synthetic.js'
import { PortRequestSchema, type Exposures } from '../host/ports.js'
import { checkExposable } from '../host/portsdir.js'
import { noSuchNode } from '../host/registry.js'
import { CONTROL_README } from './readme.js'
import { RemoveSchema, SandboxCreateSchema, VolumeCreateSchema } from './schemas.js'

export interface ControlDeps {
  tokens: TokenStore
  exposures: Exposures
  registry: Registry
  journal: Journal
  /** Closes the connections that use a token that was just revoked. */
  revoked (name: string): void
}

/** A new token's secret waits here, in memory only, until it is read once (or this long). */
const SECRET_KEPT_MS = 10 * 60_000

/** A secret waiting to be read, and the session (connection) that made the token: the only one to get it. */
interface PendingSecret { secret: string, session: string | undefined, until: number }

export function controlDir (deps: ControlDeps): SynthDir {
  const secrets = new Map<string, PendingSecret>()
  const pending = (name: string): PendingSecret | undefined => {
    const kept = secrets.get(name)
    if (kept && kept.until < Date.now()) secrets.delete(name)
    return secrets.get(name)
  }

  /** The secret, once, to the session that made the token; any other is refused and takes nothing. */
  const takeSecret = (name: string, session: string | undefined): string => {
    const kept = pending(name)
    if (kept === undefined) throw new HerdsError('ENOENT', `the secret of token "${name}" was shown once already; revoke it and make another`)
    if (kept.session !== session) throw new HerdsError('EACCES', `the secret of token "${name}" goes only to the connection that wrote tokens/create`)
    secrets.delete(name)
    return kept.secret + '\n'
  }

  const tokenDir = (name: string): SynthDir | undefined => {
    const record = deps.tokens.get(name)
    if (!record) return undefined
    const entries: Record<string, SynthFile> = { 'info.json': jsonFile(() => tokenInfo(record)) }
    // Taken at open, so the secret is shown to one reader only, of the session that made it; 0400: the owner's.
    if (pending(name) !== undefined) {
      entries.secret = {
        kind: 'file',
        mode: 0o400,
        open: (_flags, ctx) => {
          const text = Buffer.from(takeSecret(name, ctx?.session))
          return { read: (offset, length) => text.subarray(offset, offset + length) }
        },
      }
    }
    return { kind: 'dir', entries }
  }

  /** tokens/create: the session that writes it is the one its secret goes to. */
  const createFile: SynthFile = {
    kind: 'file',
    mode: 0o222,
    open: (flags, ctx) => jsonActionFile({
      schema: TokenRequestSchema,
      what: 'tokens/create',
      maxBytes: 4096,
      commit: async (request) => {
        const { record, secret } = await deps.tokens.create(request)
        for (const kept of secrets.keys()) pending(kept) // secrets never read are let go, not only when looked up
        secrets.set(record.name, { secret, session: ctx?.session, until: Date.now() + SECRET_KEPT_MS })
      },
    }).open(flags, ctx),
  }

  return {
    kind: 'dir',
    entries: {
      'README.md': textFile(CONTROL_README),
      tokens: {
        kind: 'dir',
        entries: {
          create: createFile,
        },
        list: () => deps.tokens.list().map((t) => t.name),
        lookup: tokenDir,
        rmdir: async (name) => {
          await deps.tokens.revoke(name)
          secrets.delete(name)
          deps.revoked(name)
        },
      },
      sandboxes: {
        kind: 'dir',
        entries: {
          create: jsonActionFile({
            schema: SandboxCreateSchema,
            what: 'sandboxes/create',
            commit: async ({ node, name, config }) => {
              const tree = deps.registry.treeOf(node)
              const path = `/sandboxes/${name}`
              await inWords('sandbox', name, node, () => tree.mkdir(path, 0o755))
              if (!config) return
              // Nothing half-applied: a config the node refuses takes the new sandbox with it.
              try {
                await writeWhole(tree, `${path}/config.json`, Buffer.from(JSON.stringify(config)))
              } catch (err) {
                await tree.rmdir(path).catch(() => {})
                throw err
              }
            },
          }),
          remove: removeFile(deps, 'sandboxes'),
        },
      },
      volumes: {
        kind: 'dir',
        entries: {
          create: jsonActionFile({
            schema: VolumeCreateSchema,
            what: 'volumes/create',
            maxBytes: 4096,
            commit: ({ node, name }) => inWords('volume', name, node, () => deps.registry.treeOf(node).mkdir(`/volumes/${name}`, 0o755)),
          }),
          remove: removeFile(deps, 'volumes'),
        },
      },
      nodes: {
        kind: 'dir',
        list: () => deps.registry.names(),
        lookup: (name) => deps.registry.get(name) && {
          kind: 'dir',
          entries: {
            forget: actionFile({
              maxBytes: 64,
              // Its exposures go too: a new node of its name starts with none.
              commit: async () => { deps.registry.forget(name); await deps.exposures.forgetNode(name) },
            }),
          },
        },
      },
      ports: {
        kind: 'dir',
        entries: {
          // The one way to a public port: only an admin writes here, and every write is in audit.jsonl.
          create: jsonActionFile({
            schema: PortRequestSchema,
            what: 'ports/create',
            maxBytes: 4096,
            commit: async (request) => {
              const entry = deps.registry.get(request.node)
              if (!entry) throw new HerdsError('ENOENT', noSuchNode(deps.registry, request.node))
              await checkExposable(entry, entry.link.tree, request.sandbox ?? null)
              await deps.exposures.add(request, null)
            },
          }),
        },
      },
      'errors.log': textFile(() => deps.journal.errorsLog()),
      'audit.jsonl': textFile(() => deps.journal.auditLog()),
      // Control changes apart, where no number of job starts can push them out.
      'audit-control.jsonl': textFile(() => deps.journal.controlLog()),
    },
  }
}

/** sandboxes/remove, volumes/remove: {node, name}. */
function removeFile (deps: ControlDeps, folder: 'sandboxes' | 'volumes'): SynthFile {
  return jsonActionFile({
    schema: RemoveSchema,
    what: `${folder}/remove`,
    maxBytes: 4096,
    commit: ({ node, name }) => inWords(folder === 'sandboxes' ? 'sandbox' : 'volume', name, node, async () => {
      await deps.registry.treeOf(node).rmdir(`/${folder}/${name}`)
      if (folder === 'sandboxes') await deps.exposures.forgetSandbox(node, name)
    }),
  })
}

/** Says what went wrong with a sandbox or volume in the user's words, not in the node's paths. */
async function inWords<T> (what: 'sandbox' | 'volume', name: string, node: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (err) {
    const error = toHerdsError(err)
    const words: Partial<Record<Errno, string>> = {
      EEXIST: `${what} ${name} exists already on ${node}`,
      ENOENT: `no ${what} named ${name} on ${node}`,
      ENOTEMPTY: `${what} ${name} on ${node} is not empty; remove what is in it first`,
    }
    throw new HerdsError(error.code, (!error.message.startsWith('no node named') && words[error.code]) || error.message)
  }
}
