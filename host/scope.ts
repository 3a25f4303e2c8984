/**
 * What a token's scope may do, as a view of the namespace: one table of rules
 * by path, checked per operation; modes show only what the scope allows, so
 * `ls -l` tells the truth and a forbidden write fails with EACCES.
 */
import { HerdsError } from '../tree/errno.js'
import { callOp, treeFromCall } from '../tree/peer.js'
import { mapEntryStats, O_ACCMODE, O_WRONLY, S_IFDIR, S_IFMT, wantsWrite, type DirEntry, type Op, type Stat, type Tree } from '../tree/tree.js'
import type { Scope } from './tokens.js'

/** Scopes a mount may have, weakest first. */
const RANK: Record<Exclude<Scope, 'node'>, number> = { read: 1, run: 2, admin: 3 }
type MountScope = keyof typeof RANK

interface Rule {
  pattern: RegExp
  /** The scope needed to read (open for reading, list, readlink). */
  read: MountScope
  /** The scope needed to change (open for writing, create, remove, rename, chmod, …). */
  write: MountScope
}

/** First match wins. */
const RULES: Rule[] = [
  // Anyone may see that control exists and read how it works.
  { pattern: /^\/\.herds\/control(\/README\.md)?$/, read: 'read', write: 'admin' },
  { pattern: /^\/\.herds\/control\//, read: 'admin', write: 'admin' },
  // Opening `new` allocates a job: it is a write in disguise.
  { pattern: /^\/nodes\/[^/]+\/(sandboxes\/[^/]+\/)?exec\/new$|^\/\.herds\/venoms\/run\/new$/, read: 'run', write: 'run' },
  // Jobs' environments are where people put credentials: only those who may run jobs read them.
  { pattern: /^\/nodes\/[^/]+\/(sandboxes\/[^/]+\/)?exec\/(jobs\/[^/]+\/)?env$|^\/\.herds\/venoms\/run\/(jobs\/[^/]+\/)?env$|^\/nodes\/[^/]+\/sandboxes\/[^/]+\/config\.json$/, read: 'run', write: 'run' },
  // A connection to a server on a node (ports/<port>/new, its data): a write in disguise, as new is.
  { pattern: /^\/nodes\/[^/]+\/(sandboxes\/[^/]+\/)?ports\/tcp\/\d+\/(new$|\d+(\/|$))/, read: 'run', write: 'run' },
  // Exposing a port (mkdir ports/<port>) is for those who may run things there.
  { pattern: /^\/nodes\/[^/]+\/ports\//, read: 'read', write: 'run' },
  // Running things, and the node's working space (a run token runs commands there anyway).
  { pattern: /^\/nodes\/[^/]+\/(exec|sandboxes|volumes|fs)\/|^\/\.herds\/venoms\/run\//, read: 'read', write: 'run' },
  { pattern: /^/, read: 'read', write: 'admin' },
]

/** Which scope an operation on `path` needs; read when `write` is false. */
export function scopeNeeded (path: string, write: boolean): MountScope {
  const rule = RULES.find((r) => r.pattern.test(path))!
  return write ? rule.write : rule.read
}

export function allows (scope: Scope, needed: MountScope): boolean {
  return scope !== 'node' && RANK[scope] >= RANK[needed]
}

/** Paths whose very existence is for admins (which tokens exist, which secrets wait). */
const HIDDEN_NAMES = /^\/\.herds\/control\/(tokens|nodes)\/[^/]+/

/** Operations that change what a path names, with the argument holding that path. */
const CHANGES: Partial<Record<Op, number>> = { truncate: 0, create: 0, mkdir: 0, unlink: 0, rmdir: 0, symlink: 1, utimens: 0, chmod: 0, mknod: 0, setxattr: 0, removexattr: 0 }

export interface ScopedOptions {
  scope: Scope
  token: string
  /** Told of each refusal, for errors.log. */
  onRefuse?: (path: string, err: HerdsError) => void
}

/** The namespace as a token of `scope` may use it. */
export function scoped (inner: Tree, opts: ScopedOptions): Tree {
  const need = (path: string, write: boolean): void => {
    const needed = scopeNeeded(path, write)
    if (allows(opts.scope, needed)) return
    const err = new HerdsError('EACCES', `${write ? 'changing' : 'reading'} ${path} needs a token of scope ${needed}; this one ("${opts.token}") is ${opts.scope}`)
    opts.onRefuse?.(path, err)
    throw err
  }
  return treeFromCall(async (op, args, ctx) => {
    const path = args[0] as string
    if (op === 'open') {
      const flags = args[1] as number
      if ((flags & O_ACCMODE) !== O_WRONLY) need(path, false)
      if (wantsWrite(flags)) need(path, true)
    } else if (op === 'readdir' || op === 'readdirplus' || op === 'readlink' || op === 'getxattr' || op === 'listxattr' || (op === 'getattr' && HIDDEN_NAMES.test(path))) {
      need(path, false)
    } else if (op === 'rename' || op === 'link') {
      need(path, true)
      need(args[1] as string, true)
    } else if (op === 'setlk' && args[3] === 'write') {
      need(path, true) // a write lock needs a file open for writing, as fcntl(2) has it
    } else if (CHANGES[op] !== undefined) {
      need(args[CHANGES[op]!] as string, true)
    }
    const result = await callOp(inner, op, args, ctx)
    if (op === 'getattr') return truthfulMode(result as Stat, path, opts.scope)
    // The attributes a change answers with (create, truncate, utimens, chmod) need no truthfulMode:
    // whoever may change a path may read it, since every rule's write scope is at least its read scope.
    // As getattr of each would: a name hidden from this scope comes without its attributes (getattr then refuses it).
    if (op === 'readdirplus') {
      return mapEntryStats(path, result as DirEntry[], (stat, child) =>
        HIDDEN_NAMES.test(child) && !allows(opts.scope, scopeNeeded(child, false)) ? null : truthfulMode(stat, child, opts.scope))
    }
    return result
  })
}

/** Clears the mode bits the scope cannot use. */
function truthfulMode (stat: Stat, path: string, scope: Scope): Stat {
  let mode = stat.mode
  if (!allows(scope, scopeNeeded(path, true))) mode &= ~0o222
  if (!allows(scope, scopeNeeded(path, false))) mode &= (mode & S_IFMT) === S_IFDIR ? ~0o555 : ~0o444
  return mode === stat.mode ? stat : { ...stat, mode }
}
