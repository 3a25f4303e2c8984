// The per-address cap on connections not yet upgraded counts an IPv6 /64 as one address.
import t from 'tap'
import { sourceOf } from '../../host/upgrades.js'

t.test('an address, a mapped IPv4 address and an IPv6 /64', async (t) => {
  t.equal(sourceOf('127.0.0.2'), '127.0.0.2')
  t.equal(sourceOf('::ffff:10.1.2.3'), '10.1.2.3', 'IPv4 mapped into IPv6 is the IPv4 address')
  t.equal(sourceOf('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64')
  t.equal(sourceOf('2001:db8:1:2::1'), '2001:db8:1:2::/64', 'the same /64, written short')
  t.equal(sourceOf('2001:DB8::1'), '2001:db8:0:0::/64', 'zeros filled in, case folded')
  t.equal(sourceOf('::1'), '0:0:0:0::/64')
  t.equal(sourceOf(undefined), '?')
})
