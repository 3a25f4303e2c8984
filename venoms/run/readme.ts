/** The README.md every exec/ directory shows: the contract, for whoever has only the mount. */
export const RUN_README = `# exec/ — run a command on this machine by writing a file

    echo 'make test' > cmd     # starts the job when the file is closed
    cat stdout                 # live output; ends when the job ends
    cat exit                   # waits for the end, prints the exit code (128+N after signal N)
    cat status                 # JSON: id, state, cmd, cwd, pid, exitCode, signal, createdAt,
                               #       startedAt, endedAt, durationMs, timeout, truncated, error,
                               #       tty (a terminal job's size), bytes (of output so far)

The top-level files are this directory's one shared slot. Working in parallel with
others? Take a job of your own:

    id=$(cat new)                          # a new job; prints its id
    echo 'make test' > jobs/$id/cmd
    cat jobs/$id/stdout; cat jobs/$id/exit
    mkdir jobs/nightly                     # or name it yourself (safe to retry: EEXIST)

A job from new or mkdir that gets no cmd within 10 minutes (a node's --job-expiry) expires: its status says
"expired" and why, reads of its exit and output fail with ETIMEDOUT ("Connection timed
out"), and a cmd written later is refused (EBUSY). At most 100 jobs may wait for their
cmd at once in a directory: new and mkdir fail with EAGAIN past that.

## Files

- cmd      write a command line; it runs with \`sh -c\` in this machine's workspace when the
           writer closes the file. Read: the command. At the top level a new job starts in
           the slot (EBUSY while the slot's job runs); in jobs/<id>/ the job runs once (EBUSY after,
           and once it expired).
           EINVAL for an empty command or NUL bytes, EFBIG past 64 KiB; a refused command never runs.
- stdin    write: bytes appended to the running job's standard input, write after write.
           EPIPE when the job is not running; EAGAIN when it has not read the last 1 MiB.
- ctl      write one command a line: "kill [SIGNAL]" (default TERM; the whole process group;
           SIGKILL follows after 3 s if it still runs), "eof" (closes stdin; on a terminal,
           types Ctrl-D) or "resize ROWS COLS" (a terminal job's size).
- stdout   the job's standard output. A read past the output so far waits for more; at the
           job's end it returns end-of-file. Reading again returns everything from the start.
- stderr   the same for standard error.
- output   stdout and stderr interleaved in arrival order.
- status   JSON, as above. state: idle (made, not started), running, exited, killed (by a
           signal), timed_out, failed_to_start (error says why), lost (the machine restarted
           while it ran), expired (made, given no cmd in time; error says when).
- exit     blocks until the job ends, then "<code>\\n" (255 for a lost job; ETIMEDOUT for
           an expired one).
- env      KEY=VALUE lines for the jobs started here from now on: \`> env\` replaces, \`>> env\` adds.
- timeout  seconds a job started here may run (0: no limit); then it is ended as timed_out.
- error    the last write this directory refused, with the reason in words.
- new      read: makes a new idle job and prints its id (EAGAIN while 100 wait for a cmd).
- jobs/<id>/  one job: cmd, stdin, ctl, stdout, stderr, output, status, exit; and env,
             timeout and tty for this job alone (added to the directory's), written before
             its cmd (EBUSY after it started).

## A terminal job (vim, top, a REPL, a login shell)

    id=$(cat new)
    echo '{"rows":40,"cols":120}' > jobs/$id/tty     # before cmd; term: xterm-256color
    echo 'bash -l' > jobs/$id/cmd
    printf 'ls\\n' > jobs/$id/stdin                  # keystrokes (printf '\\003': Ctrl-C)
    cat jobs/$id/stdout                             # the terminal's bytes; stderr stays empty
    echo 'resize 50 160' > jobs/$id/ctl

It runs on when nobody reads it; \`herds shell --attach $id\` takes it up again.

Output is written to the machine's disk as it arrives: a job keeps running if the
mount or the host goes away, and its output is complete when they come back. A job
keeps at most 256 MiB of output; past that a line in stdout and stderr says it was
truncated and status shows "truncated": true. The newest 1,000 ended jobs are kept,
none older than 7 days, expired ones among them.
`
