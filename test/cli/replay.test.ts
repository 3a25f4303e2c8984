// What herds shell --attach draws again: the screen's bytes, without what would make this terminal answer or act.
import t from 'tap'
import { replayable } from '../../cli/shell.js'

t.test('queries and OSC strings are left out of the replay; drawing is kept', async (t) => {
  const raw = Buffer.from('a\x1b[31mred\x1b[0m\x1b[6n\x1b[c\x1b[>c\x1b[?2004$p\x1b[18t\x1b]52;c;aGVsbG8=\x07\x1b]0;title\x1b\\b\x1b[2J\x1b[10;5H\x1b[?1049h', 'latin1')
  t.equal(replayable(raw).toString('latin1'), 'a\x1b[31mred\x1b[0mb\x1b[2J\x1b[10;5H\x1b[?1049h')
  const utf8 = Buffer.from('héllo ✓\n')
  t.same(replayable(utf8), utf8, 'bytes of UTF-8 pass unchanged')
})
