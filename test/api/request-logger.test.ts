// request.log is made at a request's first line (api/request-logger.ts): what it writes must be what fastify's own
// child wrote (the request's id, the room, the redaction), at every level, and a request that writes nothing at the
// configured level must not make a child at all (that was the cost it removes).
import t from 'tap'
import { Writable } from 'node:stream'
import { createLogger } from '../../daemon/logger.js'
import { RequestLogger, requestLogger } from '../../daemon/api/request-logger.js'
import { SecretValue } from '../../daemon/secret-value.js'

function capture (level: string): { lines: Array<Record<string, unknown>>, root: ReturnType<typeof createLogger> } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>)
      cb()
    }
  })
  return { lines, root: createLogger(level, sink) }
}

t.test('at warn, a request that only logs at info makes no child and writes nothing', async t => {
  const { lines, root } = capture('warn')
  const api = root.child({ room: 'api' })
  let made = 0
  const counting = new Proxy(api, { get: (target, p, r) => p === 'child' ? (...a: Parameters<typeof api.child>) => { made++; return target.child(...a) } : Reflect.get(target, p, r) })
  const log = new RequestLogger(counting, { reqId: 'r1' })
  log.info({ req: { url: '/x' } }, 'incoming request')
  log.debug('details')
  log.trace('more')
  t.equal(made, 0, 'no child made')
  t.equal(log.made, false)
  t.same(lines, [])
  t.equal(log.level, 'warn', 'the level is the parent\'s')
  log.warn({ code: 'NFS_ERR_X' }, 'refused')
  log.error('failed')
  t.equal(made, 1, 'one child, at the first line written')
  t.equal(lines.length, 2)
  t.match(lines[0], { reqId: 'r1', room: 'api', service: 'nf-secretsd', code: 'NFS_ERR_X', msg: 'refused', level: 40 })
  t.match(lines[1], { reqId: 'r1', room: 'api', msg: 'failed', level: 50 })
})

t.test('at info, every line carries the request id as fastify\'s own child did', async t => {
  const { lines, root } = capture('info')
  const log = requestLogger(root.child({ room: 'api' }), { reqId: 'r2' }, {})
  t.ok(log instanceof RequestLogger)
  log.info({ req: { method: 'GET' } }, 'incoming request')
  log.info({ res: { statusCode: 200 } }, 'request completed')
  t.same(lines.map(l => [l.reqId, l.room, l.msg]), [['r2', 'api', 'incoming request'], ['r2', 'api', 'request completed']])
})

t.test('the redaction holds through the lazy child: no value reaches a line', async t => {
  const { lines, root } = capture('info')
  const canary = 'CANARY-request-logger-5f1e'
  const log = new RequestLogger(root.child({ room: 'api' }), { reqId: 'r3' })
  log.info({ value: canary, body: { value: canary }, env: { TOKEN: canary }, secret: new SecretValue(canary) }, 'request refused')
  log.child({ runId: 'run1' }).warn({ values: [canary] }, 'nested')
  t.equal(lines.length, 2)
  const text = JSON.stringify(lines)
  t.notOk(text.includes(canary), 'the canary is in no line')
  t.match(lines[1], { reqId: 'r3', runId: 'run1', room: 'api' })
})

t.test('a level set on the request logger is its own; a route\'s own options get a real child at once', async t => {
  const { lines, root } = capture('warn')
  const api = root.child({ room: 'api' })
  const log = new RequestLogger(api, { reqId: 'r4' })
  log.level = 'debug'
  t.equal(log.level, 'debug')
  t.equal(api.level, 'warn', 'the parent keeps its level')
  log.debug('seen at debug')
  t.match(lines, [{ reqId: 'r4', msg: 'seen at debug', level: 20 }])
  const routed = requestLogger(api, { reqId: 'r5' }, { level: 'trace' })
  t.notOk(routed instanceof RequestLogger)
  t.equal(routed.level, 'trace')
  t.doesNotThrow(() => { log.silent() })
})
