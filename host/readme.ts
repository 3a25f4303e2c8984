/** The README.md at the root of the namespace: where a person or an agent starts. */
export const ROOT_README = `# Herds

This directory is every machine in this herd, as files.

    ls nodes/                                  # the machines; each has info.json and status.json
    echo 'uname -a' > nodes/<name>/exec/cmd    # run a command on <name>
    cat nodes/<name>/exec/stdout               # its output, live; ends when the job ends
    cat nodes/<name>/exec/exit                 # waits for the end, prints the exit code
    echo 'uname -a' > .herds/venoms/run/cmd    # the same on the default node, no name needed

Start here:

- .herds/catalog/README.md       how to use all of it: machines, commands, sandboxes,
                                 volumes; the JSON Schemas of every file that takes JSON
- nodes/<name>/exec/README.md    the whole contract of exec/
- .herds/control/README.md       administration (tokens, sandboxes, volumes): admin tokens only

What you may do depends on your token's scope (read, run or admin); files show
only the permissions you have, and anything else fails with "Permission denied".
A machine that is offline still shows info.json and status.json; everything else
under it fails with "Host is down" (EHOSTDOWN) until it is back.
`
