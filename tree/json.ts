/**
 * JSON written by users (config.json, control files): parsed and validated in
 * one place, so every refusal names the file and the field that is wrong.
 */
import type { z } from 'zod'
import { HerdsError } from './errno.js'
import { jsonPrefixError } from './jsonprefix.js'
import { actionFile, type SynthFile } from './synthetic.js'

/** Parses `text` as JSON and checks it against `schema`; EINVAL names `what` and the field. */
export function parseJsonAs<T> (schema: z.ZodType<T>, text: string, what: string): T {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new HerdsError('EINVAL', `${what} is not JSON: ${withoutQuote((err as Error).message)}`)
  }
  return parseAs(schema, value, what)
}

/**
 * V8's reason without the piece of the text it quotes: a refusal may be shown
 * where the text may not (a sandbox's exec/error is for read tokens; its
 * config.json holds secrets).
 */
function withoutQuote (message: string): string {
  return message.replace(/^(Unexpected token) .*? is not valid JSON$/s, '$1')
}

/** Checks an already-parsed value against `schema`; EINVAL names `what` and the field. */
export function parseAs<T> (schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new HerdsError('EINVAL', `${what}: ${issue.path.join('.') || '(top)'}: ${issue.message}`)
  }
  return parsed.data
}

/** Is `text` complete JSON yet? Writers may send it in pieces; only a whole document is judged. */
export function isCompleteJson (text: string): boolean {
  try { JSON.parse(text); return true } catch { return false }
}

/**
 * A file that takes one JSON document: refused with EINVAL as soon as what was
 * written is complete JSON that `schema` rejects (where the shell sees it), and
 * acted on with the parsed value when the writer closes it.
 */
export function jsonActionFile<T> (opts: {
  schema: z.ZodType<T>
  /** The file's name, as refusals give it. */
  what: string
  commit: (value: T) => Promise<void> | void
  read?: () => Promise<string> | string
  onRefuse?: (err: HerdsError) => void
  maxBytes?: number
}): SynthFile {
  return actionFile({
    maxBytes: opts.maxBytes ?? 256 * 1024,
    read: opts.read,
    onRefuse: opts.onRefuse,
    validate: (soFar) => {
      const text = soFar.toString('utf8')
      // Every such file takes an object: anything else is refused at its first byte, where a shell sees it.
      // What was written is not quoted, as in withoutQuote.
      if (/^\s*[^\s{]/.test(text)) throw new HerdsError('EINVAL', `${opts.what} takes one JSON object ({"…": …}), which starts with "{"`)
      // Refused at the first byte no JSON could have there, so the shell's write fails, not its (ignored) close.
      const bad = jsonPrefixError(text)
      if (bad) throw new HerdsError('EINVAL', `${opts.what} is not JSON: ${bad.why}, at character ${bad.at + 1}`)
      if (isCompleteJson(text)) parseJsonAs(opts.schema, text, opts.what)
    },
    commit: (data) => opts.commit(parseJsonAs(opts.schema, data.toString('utf8'), opts.what)),
  })
}
