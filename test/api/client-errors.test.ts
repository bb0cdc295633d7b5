// Requests refused before the routes (by the HTTP parser, or by fastify's URL decoding) still answer in the coded
// shape of SPEC section 7. Sent as raw bytes over a real Unix socket, since app.inject() never runs the parser.
import t from 'tap'
import { connect } from 'node:net'
import { join } from 'node:path'
import { appFixture } from '../helpers/app.js'

const f = await appFixture(t)
const socket = join(f.dir, 'api.sock')
await f.app.listen({ path: socket })
t.teardown(() => f.app.close())

function raw (bytes: string): Promise<{ status: number, body: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    const c = connect(socket)
    c.on('data', (d: Buffer) => chunks.push(d))
    c.on('error', () => {})
    c.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      const [head = '', body = ''] = text.split('\r\n\r\n')
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), body })
    })
    c.end(bytes)
  })
}

const cases: Array<[string, string]> = [
  ['an unknown method', 'FOO /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n'],
  ['two different Content-Length headers', 'POST /api/v1/secrets HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}'],
  ['a broken chunk', 'POST /api/v1/secrets HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
  ['headers over the limit', `GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: ${'h'.repeat(20_000)}\r\n\r\n`],
  ['a URL that does not percent-decode', 'GET /api/v1/secrets/%ff HTTP/1.1\r\nHost: x\r\nx-test-user: root\r\nConnection: close\r\n\r\n']
]

for (const [what, bytes] of cases) {
  t.test(what, async t => {
    const r = await raw(bytes)
    t.equal(r.status, 400)
    const body = JSON.parse(r.body) as Record<string, unknown>
    t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'])
    t.match(body, { statusCode: 400, code: 'NFS_ERR_BAD_REQUEST', error: 'Bad Request' })
  })
}

t.test('a refused request is not echoed back', async t => {
  const r = await raw('FOO /CANARY-client-error HTTP/1.1\r\nHost: x\r\nX-Value: CANARY-client-error\r\n\r\n')
  t.notMatch(r.body, 'CANARY')
})

t.test('a WebSocket route asked without an upgrade answers coded, and still upgrades', async t => {
  for (const path of ['/api/v1/events', '/api/v1/runs/AAAAAAAAAAAAAA/attach']) {
    const r = await raw(`GET ${path} HTTP/1.1\r\nHost: x\r\nx-test-user: root\r\nConnection: close\r\n\r\n`)
    t.not(r.status, 200, path)
    t.match(JSON.parse(r.body), { code: /^NFS_ERR_[A-Z_]+$/ }, `${path}: coded`)
  }
  const plain = await raw('GET /api/v1/events HTTP/1.1\r\nHost: x\r\nx-test-user: root\r\nConnection: close\r\n\r\n')
  t.match(JSON.parse(plain.body), { statusCode: 400, code: 'NFS_ERR_BAD_REQUEST' })
  const { default: WebSocket } = await import('ws')
  const ws = new WebSocket(`ws+unix://${socket}:/api/v1/events`, { headers: { 'x-test-user': 'root' } })
  t.teardown(() => ws.terminate())
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  const got = new Promise<string>(resolve => ws.once('message', d => resolve(String(d))))
  f.bus.publish({ type: 'watch.added', user: 'root' })
  t.match(JSON.parse(await got), { type: 'watch.added' }, 'the upgrade still streams events')
})
