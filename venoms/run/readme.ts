/** The README.md every exec/ directory shows: the contract, for whoever has only the mount. */
export const RUN_README = `# exec/ — run a command on this machine by writing a file

    echo 'make test' > cmd     # starts the job when the file is closed
    cat stdout                 # live output; ends when the job ends
    cat stderr
    cat exit                   # waits for the end, prints the exit code (128+N after signal N)
    cat status                 # JSON: id, state, cmd, cwd, pid, exitCode, signal, startedAt, endedAt, durationMs, error

Files:

- cmd      write a command line; it runs with \`sh -c\` in this machine's workspace when the
           writer closes the file. Read: the current job's command. Refused with EBUSY
           while the current job runs; EINVAL for an empty command or NUL bytes; EFBIG
           past 64 KiB. A command with a refused write never runs.
- stdout   the current job's standard output. A read past the output so far waits for more;
           at the job's end it returns end-of-file. Reading again returns everything from the start.
- stderr   the same for standard error.
- output   stdout and stderr interleaved in arrival order.
- status   JSON; state is one of idle, running, exited, killed, failed_to_start, lost
           (lost: the machine restarted while the job ran). error says why a job failed to start.
- exit     blocks until the job ends, then "<code>\\n".
- jobs/<id>/  every job that ran here: cmd, stdout, stderr, output, status, exit.

Output is written to the machine's disk as it arrives: a job keeps running if the
mount or the host goes away, and its output is complete when they come back.
`
