/** What one MCP call may carry, so one answer never floods an agent's context or the server's memory. */

/** A read answers with this much unless asked for less. */
export const READ_DEFAULT_BYTES = 256 * 1024
/** A read answers with at most this much; the agent reads on from the offset it is given. */
export const READ_MAX_BYTES = 1024 * 1024
/** A write takes at most this much (base64 counts as the bytes it decodes to, roughly). */
export const WRITE_MAX_BYTES = 8 * 1024 * 1024
/** A listing names at most this many entries. */
export const LIST_MAX_ENTRIES = 1000
/** `run` and `job` give at most this much of stdout and of stderr each; the rest is read on with `job`. */
export const OUTPUT_MAX_BYTES = 64 * 1024
/** A progress notification carries at most this much new output... */
export const PROGRESS_MAX_BYTES = 4 * 1024
/** ...and one goes out at most this often. */
export const PROGRESS_EVERY_MS = 250
/** `job` waits at most this long for a job's end. */
export const JOB_WAIT_MAX_S = 60
/** Sessions of `herds mcp --http` at once (each holds a connection to the host). */
export const HTTP_MAX_SESSIONS = 32
/** The largest HTTP request body `herds mcp --http` reads. */
export const HTTP_MAX_BODY_BYTES = 16 * 1024 * 1024
