// The pure parts of the aws target: error classification and backoff, names and tokens, and the flow control
// (driven by an injected clock, so nothing here depends on how fast the machine is; the one real-clock test only
// checks an upper bound, which a slow machine can only make easier).
import { performance } from 'node:perf_hooks'
import t from 'tap'
import { buildTags, requestToken, runIdFromName, secretName, isValidPrefix } from '../../adapters/aws/naming.js'
import { backoffMs, describeError, isRetryable, isThrottle, withRetry } from '../../adapters/aws/retry.js'
import { Semaphore, TokenBucket } from '../../adapters/aws/throttle.js'
import { ManualTimers } from '../helpers/manual-timers.js'

const awsError = (name: string, status?: number, extra: object = {}): Error =>
  Object.assign(new Error('some text that must not matter'), { name, ...(status !== undefined ? { $metadata: { httpStatusCode: status } } : {}), ...extra })

t.test('retryable by name, code and status, never by message', async (t) => {
  const table: Array<[Error, boolean, boolean]> = [
    [awsError('ThrottlingException', 400), true, true],
    [awsError('TooManyRequestsException', 400), true, true],
    [awsError('Whatever', 429), true, true],
    [awsError('InternalServiceError', 500), true, false],
    [awsError('Unknown', 503), true, false],
    [awsError('Unknown', undefined, { $fault: 'server' }), true, false],
    [awsError('TimeoutError'), true, false],
    [awsError('Error', undefined, { code: 'ECONNRESET' }), true, false],
    [awsError('Error', undefined, { code: 'EPIPE' }), true, false],
    [awsError('AccessDeniedException', 400), false, false],
    [awsError('ResourceExistsException', 400), false, false],
    [awsError('InvalidRequestException', 400), false, false],
    [Object.assign(new Error('Rate exceeded, throttling, socket hang up'), { name: 'ValidationException' }), false, false]
  ]
  for (const [err, retry, throttle] of table) {
    t.equal(isRetryable(err), retry, `${err.name} retryable`)
    t.equal(isThrottle(err), throttle, `${err.name} throttle`)
  }
  t.equal(describeError(awsError('ThrottlingException', 400)), 'ThrottlingException HTTP 400')
  t.equal(isRetryable('a string'), false)
})

t.test('full-jitter backoff stays between 0 and the capped exponential', async (t) => {
  const policy = { attempts: 5, baseMs: 100, capMs: 1000 }
  t.equal(backoffMs(0, policy, () => 0), 0)
  t.equal(backoffMs(2, policy, () => 0.999999), 399)
  t.equal(backoffMs(10, policy, () => 0.999999), 999, 'capped')
})

t.test('withRetry retries only what is retryable, up to the attempts', async (t) => {
  const policy = { attempts: 4, baseMs: 1, capMs: 2 }
  let n = 0
  await t.rejects(withRetry(async () => { n++; throw awsError('ThrottlingException', 400) }, policy), { name: 'ThrottlingException' })
  t.equal(n, 4)
  n = 0
  await t.rejects(withRetry(async () => { n++; throw awsError('AccessDeniedException', 400) }, policy), { name: 'AccessDeniedException' })
  t.equal(n, 1)
  n = 0
  const retries: number[] = []
  t.equal(await withRetry(async () => { if (++n < 3) throw awsError('Unknown', 502); return 'ok' }, policy, { onRetry: (_e, a) => retries.push(a) }), 'ok')
  t.same(retries, [1, 2])
})

t.test('names, run ids and request tokens', async (t) => {
  t.equal(secretName('tower-', 'abc123', 'TOKEN'), 'tower-abc123/TOKEN')
  t.equal(runIdFromName('nf-secrets/', 'nf-secrets/Ab12/TOKEN'), 'Ab12')
  t.equal(runIdFromName('nf-secrets/', 'other/Ab12/TOKEN'), undefined)
  t.equal(runIdFromName('nf-secrets/', 'nf-secrets/Ab12/deeper/TOKEN'), undefined)
  const tok = requestToken('Ab12', 'TOKEN')
  t.match(tok, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
  t.equal(requestToken('Ab12', 'TOKEN'), tok, 'deterministic')
  t.not(requestToken('Ab12', 'TOKEN2'), tok)
  t.not(requestToken('Ab13', 'TOKEN'), tok)
  t.ok(isValidPrefix('tower-') && isValidPrefix('a/b.c@d'))
  t.notOk(isValidPrefix('a*') || isValidPrefix('') || isValidPrefix('a b'))
  const tags = buildTags({ runId: 'R', host: 'h', node: 'n', user: 'u', workspace: 'w' }, { 'nf-secretsd:run': 'evil', 'nf-secretsd:node': 'evil', team: 't' })
  t.same(Object.fromEntries(tags.map((x) => [x.Key, x.Value])), {
    team: 't', 'nf-secretsd:run': 'R', 'nf-secretsd:host': 'h', 'nf-secretsd:node': 'n', 'nf-secretsd:user': 'u', 'nf-secretsd:workspace': 'w'
  })
})

t.test('token bucket: a burst, then one call per interval timed from the grant', async (t) => {
  const timers = new ManualTimers(1000)
  const bucket = new TokenBucket(10, { burst: 2, slack: 0, timers })
  const granted: number[] = []
  const takes = [0, 1, 2, 3].map(async (i) => { await bucket.take(); granted.push(i) })
  await timers.advance(0)
  t.same(granted, [0, 1], 'the burst goes at once, the rest waits')
  await timers.advance(99)
  t.same(granted, [0, 1], 'not before its time')
  await timers.advance(1)
  t.same(granted, [0, 1, 2], 'one more per 100 ms of the clock')
  await timers.advance(100)
  await Promise.all(takes)
  t.same(granted, [0, 1, 2, 3], 'in arrival order')
})

t.test('token bucket: 40/s with a burst of 10 lets 10 go at once and never more than 50 in any second', async (t) => {
  const bucket = new TokenBucket(40, { burst: 10 })
  const t0 = performance.now()
  const at: number[] = []
  const takes = Array.from({ length: 70 }, async () => { await bucket.take(); at.push(performance.now() - t0) })
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(at.length, 10, 'the burst leaves before any timer')
  await Promise.all(takes)
  let worst = 0
  for (let i = 0; i < at.length; i++) {
    let n = 0
    for (let j = i; j < at.length && at[j]! < at[i]! + 1000; j++) n++
    worst = Math.max(worst, n)
  }
  t.ok(worst <= 50, `at most rate + burst in any one-second window (saw ${worst})`)
})

t.test('token bucket: a late grant pushes the next one back instead of bunching', async (t) => {
  const timers = new ManualTimers(0)
  const bucket = new TokenBucket(10, { slack: 0, timers })
  const granted: string[] = []
  const takes = ['a', 'b', 'c'].map(async (i) => { await bucket.take(); granted.push(i) })
  await timers.advance(0)
  t.same(granted, ['a'])
  timers.skip(350) // the loop was busy well past the slots b and c were queued for
  await timers.advance(0)
  t.same(granted, ['a', 'b'], 'b goes late')
  await timers.advance(99)
  t.same(granted, ['a', 'b'], 'and c still waits a full interval after it')
  await timers.advance(1)
  await Promise.all(takes)
  t.same(granted, ['a', 'b', 'c'])
})

t.test('semaphore bounds concurrency and serves in order', async (t) => {
  const gate = new Semaphore(2)
  let active = 0
  let peak = 0
  const order: number[] = []
  await Promise.all([0, 1, 2, 3, 4].map(async (i) => await gate.run(async () => {
    active++
    peak = Math.max(peak, active)
    order.push(i)
    await new Promise((resolve) => setImmediate(resolve))
    active--
  })))
  t.equal(peak, 2)
  t.same(order, [0, 1, 2, 3, 4])
  await t.rejects(gate.run(async () => { throw new Error('boom') }))
  t.equal(await gate.run(async () => 'free again'), 'free again', 'a throwing task releases its slot')
})
