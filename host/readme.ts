/** The README.md at the root of the namespace: where a person or an agent starts. */
export const ROOT_README = `# Herds

This directory is every machine in this herd, as files.

    ls nodes/                                  # the machines; each has info.json and status.json
    echo 'uname -a' > nodes/<name>/exec/cmd    # run a command on <name>
    cat nodes/<name>/exec/stdout               # its output, live; ends when the job ends
    cat nodes/<name>/exec/exit                 # waits for the end, prints the exit code

- nodes/<name>/exec/README.md    the whole contract of exec/
- .herds/catalog/nodes.json      every node, online or not

A machine that is offline still shows info.json and status.json; everything else
under it fails with "Host is down" (EHOSTDOWN) until it is back.
`
