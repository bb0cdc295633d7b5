// The aws target through a proxy that throttles, fails, slows and cuts connections on the way to moto, with many
// runs at once on one target. What must hold whatever the faults: each provision ends complete or leaves nothing,
// each revoke eventually completes, and the far end never sees more calls in a second than the configured rate.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { pino } from 'pino'
import { createAwsTarget } from '../../adapters/aws-secrets-manager.js'
import type { TargetRun } from '../../adapters/types.js'
import { isCoded } from '../../daemon/errors.js'
import { SecretValue } from '../../daemon/secret-value.js'
import { startFaultProxy } from '../helpers/fault-proxy.js'
import { MOTO_CREDENTIALS, MOTO_REGION, getValue, listAll, startMoto } from '../helpers/moto.js'
import { requireMoto } from '../helpers/requires.js'

const RATE = 20
requireMoto(t)
const moto = await startMoto(t)
const logger = pino({ level: 'silent' })

function makeRun (i: number, names: string[]): TargetRun {
  return {
    runId: `Fault${String(i).padStart(9, '0')}`,
    sessionId: '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
    user: 'bob',
    uid: 1002,
    gid: 1002,
    workspace: 'lab',
    launchDir: '/home/bob/p',
    host: 'login-2',
    names
  }
}

t.beforeEach(async () => { await moto.reset() })

t.test('under throttling, 5xx, latency and dropped connections: all or nothing, revokes complete, rate kept', async (t) => {
  const proxy = await startFaultProxy(t, moto.endpoint, {
    seed: 20240611,
    rates: { throttle: 0.12, serverError: 0.06, dropBefore: 0.03, dropAfter: 0.05, latencyMs: [0, 25] }
  })
  // One run is refused part-way whatever the dice say, so the all-or-nothing path is always walked under faults.
  proxy.setRule((op, body) => op === 'CreateSecret' && String(body.Name).endsWith('Fault000000003/S5') ? 'denied' : undefined)
  const target = createAwsTarget({
    region: MOTO_REGION,
    endpoint: proxy.endpoint,
    credentials: MOTO_CREDENTIALS,
    host: 'login-2',
    logger,
    maxConcurrency: 8,
    rateLimitPerSecond: RATE,
    retry: { attempts: 7, baseMs: 20, capMs: 400 }
  })
  t.teardown(async () => await target.close())

  const names = Array.from({ length: 8 }, (_, i) => `S${i}`)
  const runs = Array.from({ length: 6 }, (_, i) => makeRun(i, names))
  const values = new Map(runs.map((r) => [r.runId, new Map(names.map((n) => [n, new SecretValue(`${n}-${randomBytes(8).toString('hex')}`)]))]))
  const outcomes = await Promise.allSettled(runs.map(async (r) => await target.provision(r, values.get(r.runId)!)))

  const inMoto = await listAll(moto.endpoint, true)
  let failed = 0
  for (const [i, r] of runs.entries()) {
    const outcome = outcomes[i]!
    const mine = inMoto.filter((s) => s.Name.startsWith(`nf-secrets/${r.runId}/`))
    if (outcome.status === 'rejected') {
      failed++
      t.ok(isCoded(outcome.reason, 'NFS_ERR_PROVISION_FAILED'), `${r.runId}: a coded failure`)
      t.same(mine.map((s) => s.Name), [], `${r.runId}: failed and left nothing`)
      continue
    }
    t.equal(mine.length, names.length, `${r.runId}: every secret placed`)
    t.same(outcome.value.refs.map((x) => x.ref).sort(), mine.map((s) => s.ARN).sort(), `${r.runId}: refs are the ARNs`)
    for (const s of mine) {
      t.notOk(s.DeletedDate, `${s.Name} live`)
      t.equal(await getValue(moto.endpoint, s.ARN), values.get(r.runId)!.get(s.Name.split('/').pop()!)!.reveal(), `${s.Name} value`)
    }
  }
  t.ok(failed >= 1, 'the refused run failed')
  t.ok(failed < runs.length, 'and not every run did')

  // The ledger would retry a failed revoke later; here the retries come at once.
  for (const r of runs) {
    let attempts = 0
    for (;;) {
      attempts++
      try {
        await target.revoke(r)
        break
      } catch (err) {
        t.ok(isCoded(err, 'NFS_ERR_REVOKE_FAILED'), 'a revoke that fails says so with its code')
        if (attempts >= 20) throw err
      }
    }
  }
  t.same(await listAll(moto.endpoint, true), [], 'every revoke completed: nothing is left in moto')

  const injected = proxy.injected()
  t.ok(injected.throttle > 0 && injected['server-error'] > 0 && injected['drop-after'] > 0, 'faults of each kind were injected')
  const stats = target.stats()
  t.ok(stats.throttles >= 1 && stats.retries >= injected.throttle, 'throttles were counted and retried')
  const arrived = Object.values(proxy.byOp()).reduce((a, b) => a + b, 0)
  t.ok(stats.calls >= arrived - injected['drop-before'], 'every request that arrived was counted as a call')
  t.ok(arrived > 3 * RATE, 'enough calls that an unpaced client would have gone over the rate')
  t.ok(proxy.maxPerSecond() <= RATE, `at most ${RATE} calls arrived in any second (saw ${proxy.maxPerSecond()})`)
})

t.test('the token bucket is shared: two bursts of runs together stay under the rate', async (t) => {
  const proxy = await startFaultProxy(t, moto.endpoint)
  const target = createAwsTarget({
    region: MOTO_REGION, endpoint: proxy.endpoint, credentials: MOTO_CREDENTIALS, host: 'login-2', logger, maxConcurrency: 16, rateLimitPerSecond: 10
  })
  t.teardown(async () => await target.close())
  const runs = Array.from({ length: 8 }, (_, i) => makeRun(100 + i, ['A1', 'B2', 'C3', 'D4']))
  await Promise.all(runs.map(async (r) => await target.provision(r, new Map(r.names.map((n) => [n, new SecretValue(`x-${n}`)])))))
  t.equal(proxy.byOp().CreateSecret, 32)
  t.ok(proxy.maxPerSecond() <= 10, `at most 10 calls in any second (saw ${proxy.maxPerSecond()})`)
  t.equal((await listAll(moto.endpoint)).length, 32)
})
