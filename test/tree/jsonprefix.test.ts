// The JSON prefix check: every prefix of a valid document passes, and a bad
// byte is caught where it stands.
import t from 'tap'
import { jsonPrefixError } from '../../tree/jsonprefix.js'

const VALID = [
  '{"node": "studio", "name": "web", "config": {"env": {"A": "1"}, "network": false, "volumes": {}}}',
  '{"a": [1, -2.5e+3, 0, 0.25, true, false, null, [], [[]], {}, "x\\"y\\\\\\u00e9"]}',
  '  {\n  "k" : "v" }\n',
]

t.test('every prefix of a valid document can still be one', async (t) => {
  for (const doc of VALID) {
    JSON.parse(doc) // really valid
    for (let n = 0; n <= doc.length; n++) {
      const err = jsonPrefixError(doc.slice(0, n))
      if (err) t.fail(`${JSON.stringify(doc.slice(0, n))}: ${err.why} at ${err.at}`)
    }
  }
  t.pass('all prefixes pass')
})

t.test('the first impossible byte is found where it stands', async (t) => {
  const cases: Array<[string, number]> = [
    ['{not json}', 1],
    ['{"a" 1}', 5],
    ['{"a": tru e}', 9],
    ['{"a": 01}', 7],
    ['{"a": 1,}', 8],
    ['{"a": [1 2]}', 9],
    ['{"a": "\\x"}', 8],
    ['{"a": 1}}', 8],
    ['{"a": 1} x', 9],
    ['{"a": "line\nbreak"}', 11],
    ['{"a": -}', 7],
    ['{"a": nul}', 9],
  ]
  for (const [text, at] of cases) {
    t.throws(() => JSON.parse(text), `${JSON.stringify(text)} is really not JSON`)
    t.equal(jsonPrefixError(text)?.at, at, `${JSON.stringify(text)}: ${jsonPrefixError(text)?.why}`)
  }
})
