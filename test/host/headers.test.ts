// The proxy's edge, byte for byte: what of a server's answer reaches a browser, and which origins count as the host's own.
import type { IncomingMessage } from 'node:http'
import t from 'tap'
import { answerHeaders, answerWithoutLogin, forwardedHeaders, sameOrigin } from '../../host/headers.js'

/** A request as the proxy sees one: its headers, on a plain (not TLS) socket. */
const asked = (headers: Record<string, string>): IncomingMessage => ({ headers, socket: { remoteAddress: '10.0.0.9' } }) as unknown as IncomingMessage

t.test('an upgrade answer loses the login\'s Set-Cookie however it is cut into chunks; the rest passes whole', async (t) => {
  const answer = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSet-Cookie: herds_session=x; Path=/nodes/\r\nset-cookie:  herds_session =y\r\nSet-Cookie: app=1\r\nClear-Site-Data: "cookies"\r\n\r\nframe-bytes'
  for (const size of [1, 7, 64, answer.length]) {
    const filter = answerWithoutLogin()
    const out: Buffer[] = []
    filter.on('data', (c: Buffer) => out.push(c))
    for (let i = 0; i < answer.length; i += size) filter.write(Buffer.from(answer.slice(i, i + size), 'latin1'))
    filter.end()
    await new Promise((resolve) => filter.once('end', resolve))
    t.equal(Buffer.concat(out).toString('latin1'), 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSet-Cookie: app=1\r\n\r\nframe-bytes', `in chunks of ${size}`)
  }
})

t.test('an upgrade answer with no end to its head fails past 64 KiB rather than grow', async (t) => {
  const filter = answerWithoutLogin()
  const failed = new Promise<Error>((resolve) => filter.once('error', resolve))
  filter.resume()
  for (let i = 0; i < 80; i++) filter.write(Buffer.alloc(1024, 0x61))
  t.match(await failed, { message: /no end of its head/ })
})

t.test('answer headers: no hop-by-hop ones, nor those the Connection header names; the rest in order', async (t) => {
  t.same(answerHeaders(['Content-Type', 'text/plain', 'Connection', 'close, X-Private', 'X-Private', '1', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked', 'Set-Cookie', 'a=1', 'Set-Cookie', 'herds_session=z']),
    ['Content-Type', 'text/plain', 'Set-Cookie', 'a=1'])
})

t.test('forwarded headers: no token, no login cookie, no hop-by-hop ones (but for an upgrade); where it came from', async (t) => {
  const req = asked({ host: 'h:1', authorization: 'Bearer s', cookie: 'a=1; herds_session=q;  herds_session =r; b=2', connection: 'keep-alive', 'keep-alive': 'timeout=5', upgrade: 'websocket' })
  const plain = forwardedHeaders(req, '/nodes/n/ports/1')
  t.same(plain, { host: 'h:1', cookie: 'a=1; b=2', 'x-forwarded-for': '10.0.0.9', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'h:1', 'x-forwarded-prefix': '/nodes/n/ports/1' })
  t.match(forwardedHeaders(req, '/p', true), { connection: 'keep-alive', upgrade: 'websocket' }, 'an upgrade asks for the connection itself')
})

t.test('same origin: scheme, name and port of the host (or of the proxy in front); null only as same-origin', async (t) => {
  t.ok(sameOrigin(asked({ host: 'h:7077' })), 'no Origin: a program')
  t.ok(sameOrigin(asked({ host: 'h:7077', origin: 'http://h:7077' })))
  t.notOk(sameOrigin(asked({ host: 'h:7077', origin: 'http://h:8080' })), 'another port')
  t.notOk(sameOrigin(asked({ host: 'h:7077', origin: 'https://h:7077' })), 'another scheme')
  t.notOk(sameOrigin(asked({ host: 'h:7077', origin: 'http://evil.example' })))
  t.ok(sameOrigin(asked({ host: 'internal:7077', origin: 'https://herds.example', 'x-forwarded-host': 'herds.example', 'x-forwarded-proto': 'https' })), 'behind a proxy')
  t.ok(sameOrigin(asked({ host: 'h', origin: 'null', 'sec-fetch-site': 'same-origin' })))
  t.notOk(sameOrigin(asked({ host: 'h', origin: 'null' })))
  t.notOk(sameOrigin(asked({ host: 'h', origin: 'not a url' })))
})
