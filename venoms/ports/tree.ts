/**
 * ports/tcp/: TCP connections to servers on the node, as files (Plan 9's
 * /net, DESIGN §11). Reading ports/tcp/<port>/new connects to 127.0.0.1:<port>
 * and gives the connection's id; ports/tcp/<port>/<id>/data then carries its bytes
 * both ways. Nodes never listen: this is how herds forward and the host's
 * exposed ports reach a server, over the connection the node already holds.
 *
 * A connection lives while its data file is open: the last close (or the
 * client's connection going away, which closes what it held) closes it. One
 * whose data is never opened is closed after UNCLAIMED_MS.
 */
import { HerdsError } from '../../tree/errno.js'
import { actionFile, jsonFile, textFile, type FileHandle, type SynthDir, type SynthFile } from '../../tree/synthetic.js'
import { dialLoopback, PortConnection, type Dial } from './connection.js'

/** Connections open at once through one ports/ folder, at most (each holds a descriptor of the node's). */
export const MAX_CONNECTIONS = 1024
/** A connection made by `new` whose data nobody opened is closed after this long. */
export const UNCLAIMED_MS = 30_000

export interface PortsOptions {
  /** Why this folder's connections cannot be made (a sandbox without network), or null. */
  refuse?: () => string | null
  dial?: Dial
  maxConnections?: number
  unclaimedMs?: number
}

interface Held { conn: PortConnection, holders: number, timer?: NodeJS.Timeout }

/** A port number as a name: 1 to 65535, written plainly. */
export function parsePort (name: string): number | undefined {
  if (!/^[1-9]\d{0,4}$/.test(name)) return undefined
  const port = Number(name)
  return port <= 65535 ? port : undefined
}

/** The ports/ folder of a node or a sandbox. */
export function portsDir (opts: PortsOptions = {}): SynthDir {
  const dial = opts.dial ?? dialLoopback
  const max = opts.maxConnections ?? MAX_CONNECTIONS
  const unclaimedMs = opts.unclaimedMs ?? UNCLAIMED_MS
  const open = new Map<string, Held>()
  /** Connections still being dialled: they count against the bound too, or many asked at once would pass it. */
  let dialling = 0
  let lastId = 0

  const connect = async (port: number): Promise<string> => {
    const why = opts.refuse?.()
    if (why) throw new HerdsError('EACCES', why)
    if (open.size + dialling >= max) throw new HerdsError('EAGAIN', `${max} connections are open here already; close one first`)
    const id = String(++lastId)
    dialling++
    const conn = await PortConnection.open(dial, port, id, () => {
      clearTimeout(open.get(id)?.timer)
      open.delete(id)
    }).finally(() => { dialling-- })
    const held: Held = { conn, holders: 0 }
    held.timer = setTimeout(() => { if (held.holders === 0) conn.close() }, unclaimedMs)
    held.timer.unref()
    open.set(id, held)
    return id + '\n'
  }

  const connectionDir = (port: number, held: Held): SynthDir => ({
    kind: 'dir',
    entries: {
      data: dataFile(held),
      ctl: actionFile({
        maxBytes: 1024,
        validate: (soFar) => { for (const line of soFar.toString('utf8').split('\n').slice(0, -1)) parseCtl(line) },
        commit: (data) => {
          for (const line of data.toString('utf8').split('\n')) {
            const verb = parseCtl(line)
            if (verb === 'eof') held.conn.shut()
            if (verb === 'close') held.conn.close()
          }
        },
      }),
      status: jsonFile(() => ({
        id: held.conn.id,
        port,
        state: held.conn.state,
        openedAt: held.conn.openedAt,
        bytesIn: held.conn.bytesIn,
        bytesOut: held.conn.bytesOut,
      })),
    },
  })

  const portDir = (port: number): SynthDir => ({
    kind: 'dir',
    entries: { new: textFile(() => connect(port)) },
    list: () => [...open.values()].filter((h) => h.conn.port === port).map((h) => h.conn.id),
    lookup: (name) => {
      const held = open.get(name)
      return held && held.conn.port === port ? connectionDir(port, held) : undefined
    },
    missing: (name) => `no connection ${name} to port ${port} here (read ports/tcp/${port}/new to make one)`,
  })

  return {
    kind: 'dir',
    entries: {
      'README.md': textFile(PORTS_README),
      tcp: {
        kind: 'dir',
        list: () => [...new Set([...open.values()].map((h) => String(h.conn.port)))],
        lookup: (name) => {
          const port = parsePort(name)
          return port === undefined ? undefined : portDir(port)
        },
        missing: (name) => `ports/tcp/ holds port numbers, 1 to 65535, not ${JSON.stringify(name.slice(0, 80))}`,
      },
    },
  }
}

/** data: the connection's bytes; each open holds the connection, the last close closes it. */
function dataFile (held: Held): SynthFile {
  return {
    kind: 'file',
    mode: 0o666,
    open: (): FileHandle => {
      held.holders++
      let released = false
      return {
        // A stream, as a socket is: each read takes the next bytes, whatever its offset.
        read: (_offset, length, ctx) => held.conn.read(length, ctx?.signal),
        write: (_offset, data) => held.conn.write(data),
        release: () => {
          if (released) return
          released = true
          if (--held.holders === 0) held.conn.close()
        },
      }
    },
  }
}

function parseCtl (line: string): 'eof' | 'close' | undefined {
  const verb = line.trim()
  if (verb === '') return undefined
  if (verb === 'eof' || verb === 'close') return verb
  throw new HerdsError('EINVAL', `a connection's ctl takes "eof" (the end of what you send) or "close", not ${JSON.stringify(verb.slice(0, 80))}`)
}

const PORTS_README = `# ports/: connections to servers on this node

Nodes never listen on the network: a server here (a dev server, a notebook, a
database) is reached through these files, over the node's own connection to
the host. herds forward and the host's exposed ports use them.

    id=$(cat ports/tcp/8080/new)      # connects to 127.0.0.1:8080 on the node
    exec 3<>ports/tcp/8080/$id/data   # the connection lives while data is open
    printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3
    cat <&3                           # the server's answer, to its end
    exec 3<&-                         # closes the connection

- ports/tcp/<port>/new: read: connects, gives the connection's id
  (ECONNREFUSED when nothing listens on that port).
- ports/tcp/<port>/<id>/data: read: the server's bytes, waiting for them, the
  end when the server closed its side; write: bytes to the server.
- ports/tcp/<port>/<id>/ctl: "eof" (the end of what you send), "close".
- ports/tcp/<port>/<id>/status: JSON: state, openedAt, bytesIn, bytesOut.

Through the host, mkdir ports/<port> exposes that port over HTTP at the URL
its url file then gives; rmdir ports/<port> stops it.

A connection whose data is not opened within ${UNCLAIMED_MS / 1000} s is closed; at most
${MAX_CONNECTIONS} are open at once here.
`
