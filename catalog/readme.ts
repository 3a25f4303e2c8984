/**
 * The catalog's README: how to use the whole namespace, for a person or an
 * agent that has nothing but the mount.
 */
import { SCHEMAS } from '../control/schemas.js'

const schemaLines = Object.entries(SCHEMAS)
  .map(([name, { file }]) => `    schemas/${name}.json`.padEnd(40) + file)
  .join('\n')

export const CATALOG_README = `# /.herds/catalog — how to use this namespace (read-only)

Everything here is a file; every action is a write. Paths below are from the
mount's root.

## Find a machine

    cat .herds/catalog/nodes.json      # every node: name, online, os, arch, hostname, version
    cat nodes/<node>/info.json         # cpus, memory, images it can pin
    cat nodes/<node>/status.json       # online, load, free memory, running jobs

## Run a command

    echo 'uname -a' > .herds/venoms/run/cmd    # on the default node, no name needed
    cat .herds/venoms/run/stdout               # live output; ends when the job ends
    cat .herds/venoms/run/exit                 # waits for the end; prints the exit code

Or on a chosen node: nodes/<node>/exec/ (the same files). For a job of your own
that no one else's can disturb: id=$(cat nodes/<node>/exec/new), then
nodes/<node>/exec/jobs/$id/{cmd,stdout,exit}. The whole contract: venoms/run.md.

## Work in a sandbox

    mkdir nodes/<node>/sandboxes/web                    # or write .herds/control/sandboxes/create
    echo '{"network":false}' > nodes/<node>/sandboxes/web/config.json
    cp -r src nodes/<node>/sandboxes/web/workspace/
    echo 'make' > nodes/<node>/sandboxes/web/exec/cmd
    cat nodes/<node>/sandboxes/web/exec/stdout
    cat nodes/<node>/sandboxes/web/status.json          # state, and which fence is in force

Volumes (nodes/<node>/volumes/<name>/) are persistent folders; a sandbox's
config.json mounts them at workspace/<mount> ("volumes": {"<mount>": "<volume>"}).

## Without a mount

An agent that reaches tools through MCP gets the same namespace from
herds mcp (stdio; or herds mcp --http PORT): tools nodes, list, read, write,
mkdir, remove, run, start, job, kill, sandbox_create, sandbox_remove, and these
files as resources. herds mcp --print-config prints how to start it.

## Files here

- nodes.json       every node the host knows, online or not
- health.json      host version, uptime, nodes online, mounts connected, the default node
- jobs.json        the 500 most recent jobs across nodes, newest first: node, id,
                   state, cmd, exitCode, signal, createdAt, startedAt, endedAt, durationMs
- ports.json       the ports the host serves: node, sandbox, port, public, url
- venoms/run.md    the exec/ contract: cmd, stdout, stderr, exit, status, ctl, stdin, jobs/
- schemas/         JSON Schema of every file that takes JSON, made from the same
                   schemas that check the writes:

${schemaLines}

## Errors

Refusals are errno codes with the usual meaning: EACCES (your token's scope does
not allow it; files show only the permissions you have), EINVAL (bad input; for
exec/ the reason is in exec/error, for control in .herds/control/errors.log),
EBUSY (the slot is running a job: use exec/new), EHOSTDOWN (the node is offline).
`
