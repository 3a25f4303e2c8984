/** The README.md of /.herds/control: every file, what it takes, what it does. */
export const CONTROL_README = `# /.herds/control — administration by writing files

Only a token of scope admin may read or write here (this README excepted). Each
file takes one JSON object; a write that is not valid JSON, or that breaks the
file's schema, fails with EINVAL ("Invalid argument") and nothing is applied;
the reason, with the field, is in errors.log. The schemas are in
/.herds/catalog/schemas/.

## Tokens

    echo '{"name":"ci","scope":"run"}' > tokens/create
    cat tokens/ci/secret        # the secret, shown once, through the same mount; then it is gone
    cat tokens/ci/info.json     # name, scope, node, createdAt, expiresAt
    rmdir tokens/ci             # revoke: its connections close at once

- scope: read (read-only namespace), run (also exec, sandboxes, volumes, fs),
  admin (also this folder), node (a node registering; give "node": its name,
  and it can register only as that name).
- expiresAt (optional): an ISO 8601 time after which the token is refused.
- The secret goes only to the connection (the mount, or SDK connection) that
  wrote tokens/create; any other gets EACCES ("Permission denied"), even with
  the same admin token.
- Secrets are kept only as SHA-256 hashes; one not read within 10 minutes, or
  lost when the host restarts before it was read, cannot be had again: revoke
  the token and make another.

## Sandboxes and volumes

    echo '{"node":"studio","name":"web","config":{"network":false}}' > sandboxes/create
    ls /nodes/studio/sandboxes/web          # there it is
    echo '{"node":"studio","name":"web"}' > sandboxes/remove
    echo '{"node":"studio","name":"cache"}' > volumes/create
    echo '{"node":"studio","name":"cache"}' > volumes/remove    # ENOTEMPTY unless empty

The same as mkdir and rmdir under /nodes/<node>/sandboxes/ and volumes/, with the
config applied in the same step (a config the node refuses removes the new
sandbox again). The node must be online (else EHOSTDOWN).

## Ports

    echo '{"node":"studio","sandbox":"web","port":3000,"public":true}' > ports/create
    cat /nodes/studio/sandboxes/web/ports/3000/url    # served by the host, no token needed

The host serves the server on that port over HTTP. mkdir
/nodes/<node>/ports/<port> does the same for a run token, behind a token;
only this file makes a public port, and each write goes to audit.jsonl.
rmdir the port's folder to stop serving it.

## Nodes

    echo yes > nodes/laptop/forget     # drop an offline node from /nodes (EBUSY while online)

## Logs

- errors.log     recent refusals, newest last: time, path, [token], errno: reason
- audit.jsonl    every control write and every job started, one JSON object a line:
                 time, token, event ("control" or "job"), op, path, ok, error,
                 cmd (its first 512 bytes, as escaped), cmdBytes, cmdSha256, cut
- audit-control.jsonl   the control writes alone, kept apart: job starts never
                 push them out (with the file before it, up to 8 MiB)
`
