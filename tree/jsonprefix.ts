/**
 * Can these bytes still begin a JSON document? Writers send JSON in pieces
 * and close(2) is too late to refuse it (shells ignore close errors), so a
 * control file checks each piece: the first byte that no JSON text could have
 * there is refused at once, where the shell prints the error.
 */

/** Where a JSON text stops being one, and why; undefined while it could still be. */
export interface JsonPrefixError {
  /** The offset of the first impossible character. */
  at: number
  why: string
}

type Expect = 'value' | 'value-or-end' | 'key-or-end' | 'key' | 'colon' | 'comma-or-end' | 'end'

const LITERALS = ['true', 'false', 'null']
const WS = new Set([' ', '\t', '\n', '\r'])

/**
 * Checks `text` as the start of one JSON document (RFC 8259). A complete
 * document followed by anything but white space is an error too.
 */
export function jsonPrefixError (text: string): JsonPrefixError | undefined {
  const stack: Array<'{' | '['> = []
  let expect: Expect = 'value'
  let i = 0
  const fail = (why: string): JsonPrefixError => ({ at: i, why })
  /** After a value: what the enclosing container wants next. */
  const afterValue = (): Expect => (stack.length === 0 ? 'end' : 'comma-or-end')

  while (i < text.length) {
    const c = text[i]!
    if (WS.has(c)) { i++; continue }
    if (expect === 'end') return fail('text after the end of the JSON document')
    if (expect === 'colon') {
      if (c !== ':') return fail('expected ":" after a key')
      expect = 'value'; i++; continue
    }
    if (expect === 'comma-or-end') {
      const top = stack.at(-1)
      if (c === ',') { expect = top === '{' ? 'key' : 'value'; i++; continue }
      if ((c === '}' && top === '{') || (c === ']' && top === '[')) { stack.pop(); expect = afterValue(); i++; continue }
      return fail(`expected "," or "${top === '{' ? '}' : ']'}"`)
    }
    if (expect === 'key-or-end' || expect === 'key') {
      if (c === '}' && expect === 'key-or-end') { stack.pop(); expect = afterValue(); i++; continue }
      if (c !== '"') return fail('expected a key in double quotes')
      const end = scanString(text, i)
      if (end === undefined) return undefined
      if (typeof end === 'object') return end
      i = end; expect = 'colon'; continue
    }
    // A value (or, in an array that has just opened, its end).
    if (c === ']' && expect === 'value-or-end') { stack.pop(); expect = afterValue(); i++; continue }
    if (c === '{') { stack.push('{'); expect = 'key-or-end'; i++; continue }
    if (c === '[') { stack.push('['); expect = 'value-or-end'; i++; continue }
    if (c === '"') {
      const end = scanString(text, i)
      if (end === undefined) return undefined
      if (typeof end === 'object') return end
      i = end; expect = afterValue(); continue
    }
    if (c === '-' || (c >= '0' && c <= '9')) {
      const end = scanNumber(text, i)
      if (typeof end === 'object') return end
      if (end === undefined) return undefined
      i = end; expect = afterValue(); continue
    }
    // true, false or null: as far as the text agrees with one of them.
    const agreed = Math.max(...LITERALS.map((l) => commonLength(l, text.slice(i, i + l.length))))
    const literal = LITERALS.find((l) => text.startsWith(l, i))
    if (!literal) {
      if (i + agreed === text.length) return undefined // "tr" so far
      i += agreed
      return fail('expected a JSON value')
    }
    i += literal.length; expect = afterValue()
  }
  return undefined
}

/** The offset after a string starting at `start`; undefined if it is not finished yet. */
function scanString (text: string, start: number): number | JsonPrefixError | undefined {
  let i = start + 1
  while (i < text.length) {
    const c = text[i]!
    if (c === '"') return i + 1
    if (c < ' ') return { at: i, why: 'a control character in a string (write it as \\n, \\t, …)' }
    if (c === '\\') {
      const e = text[i + 1]
      if (e === undefined) return undefined
      if ('"\\/bfnrt'.includes(e)) { i += 2; continue }
      if (e !== 'u') return { at: i + 1, why: 'a bad escape in a string' }
      const hex = text.slice(i + 2, i + 6)
      if (!/^[0-9a-fA-F]*$/.test(hex)) return { at: i + 2, why: 'a bad \\u escape in a string' }
      if (hex.length < 4) return undefined
      i += 6; continue
    }
    i++
  }
  return undefined
}

/**
 * The offset after a number starting at `start`; undefined if it runs to the
 * end of the text (more digits may come).
 */
function scanNumber (text: string, start: number): number | JsonPrefixError | undefined {
  const match = text.slice(start).match(/^-?(0|[1-9]\d*)?(\.\d*)?([eE][+-]?\d*)?/)![0]
  const end = start + match.length
  const complete = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(match)
  if (end === text.length) return undefined
  if (!complete) return { at: end, why: 'a malformed number' }
  if (/[0-9]/.test(text[end]!)) return { at: end, why: 'a malformed number' } // "01"
  return end
}

/** How many characters `a` and `b` share from the start. */
function commonLength (a: string, b: string): number {
  let n = 0
  while (n < a.length && n < b.length && a[n] === b[n]) n++
  return n
}
