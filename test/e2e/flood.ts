/** A job that swaps names as fast as it can, for the tests of the node's watch. */

/**
 * A Node script: `node flood.js SECS LINKS` makes a file `x` with LINKS more
 * names (hard links l0, l1, …) in the current folder, then renames `x` to `y`
 * and back as fast as it can for SECS seconds, and prints how many renames it
 * made. The watch sees each of the file's names, so each rename is LINKS
 * events for it: a small job is a large flood.
 */
export const FLOOD_JS = `
const fs = require('fs')
const [secs, links] = process.argv.slice(2).map(Number)
fs.writeFileSync('x', '')
for (let i = 0; i < links; i++) fs.linkSync('x', 'l' + i)
const end = Date.now() + secs * 1000
let count = 0
while (Date.now() < end) {
  for (let i = 0; i < 100; i++) { fs.renameSync('x', 'y'); fs.renameSync('y', 'x') }
  count += 200
}
console.log(count + ' renames')
`
