import t from 'tap'
import { canTransition, isExpired, retryDelayMs, stateForExit, verdict } from '../../daemon/runs/run-rules.js'
import { exportLine, parseDuration, shellQuote } from '../../daemon/cli/runs.js'

t.test('exit status to state', async t => {
  const table: Array<[number | null, string | null, string]> = [
    [0, null, 'completed'], [1, null, 'failed'], [2, null, 'failed'], [130, null, 'killed'], [137, null, 'killed'],
    [255, null, 'failed'], [null, 'SIGKILL', 'killed'], [0, 'SIGTERM', 'killed'], [null, null, 'failed']
  ]
  for (const [code, sig, state] of table) t.equal(stateForExit(code, sig), state, `${code} ${sig}`)
})

t.test('backoff grows, is capped, and is jittered', async t => {
  t.equal(retryDelayMs(1, 1000, 60_000, () => 1), 1000)
  t.equal(retryDelayMs(4, 1000, 60_000, () => 1), 8000)
  t.equal(retryDelayMs(30, 1000, 60_000, () => 1), 60_000)
  t.equal(retryDelayMs(4, 1000, 60_000, () => 0), 500, 'never below half the initial delay')
  t.ok(retryDelayMs(4, 1000, 60_000, () => 0.5) < 8000)
})

t.test('transitions', async t => {
  t.ok(canTransition('armed', 'running'))
  t.ok(canTransition('armed', 'expired'))
  t.notOk(canTransition('running', 'expired'))
  t.notOk(canTransition('completed', 'failed'))
  t.notOk(canTransition('running', 'armed'))
  t.ok(isExpired({ state: 'armed', expiresAt: '2026-01-01T00:00:00Z' }, new Date('2026-01-01T00:00:01Z')))
  t.notOk(isExpired({ state: 'running', expiresAt: '2026-01-01T00:00:00Z' }, new Date('2026-01-01T00:00:01Z')))
})

t.test('verdict: history wins, unknown probes keep a run, all dead ends it', async t => {
  t.same(verdict({ history: 'OK', probes: [true] }, null), { kind: 'ended', state: 'completed', reason: 'history OK' })
  t.same(verdict({ history: 'ERR', probes: [] }, null), { kind: 'ended', state: 'failed', reason: 'history ERR' })
  t.equal(verdict({ history: 'running', probes: [false, true] }, null).kind, 'alive')
  t.equal(verdict({ history: null, probes: [false, null] }, null).kind, 'unknown', 'a Slurm outage does not end a run')
  t.equal(verdict({ history: null, probes: [] }, null).kind, 'unknown')
  t.same(verdict({ history: 'running', probes: [false, false] }, null), { kind: 'ended', state: 'killed', reason: 'process gone without a terminal line' })
  t.same(verdict({ history: null, probes: [false] }, { exitCode: 0, signal: null }), { kind: 'ended', state: 'completed', reason: 'command exited' })
})

t.test('CLI helpers: durations, quoting, export lines', async t => {
  t.equal(parseDuration('90'), 90)
  t.equal(parseDuration('15m'), 900)
  t.equal(parseDuration('2h'), 7200)
  t.equal(parseDuration('5s'), 5)
  for (const bad of ['', '1d', '-5', '1.5m', '0', 'm']) t.throws(() => parseDuration(bad), { code: 'NFS_ERR_USAGE' }, bad)
  t.equal(shellQuote('/a/b.json'), '/a/b.json')
  t.equal(shellQuote("/it's here/x"), "'/it'\\''s here/x'")
  t.equal(shellQuote('$(rm -rf ~)'), "'$(rm -rf ~)'")
  t.equal(exportLine({ NF_SECRETS_RUN_ID: 'r1', NXF_UUID: 'u', NXF_SECRETS_FILE: '/s/store.json', NF_SECRETS_AWS_PREFIX: 'nf-secrets/r1/' }),
    'export NXF_SECRETS_FILE=/s/store.json NXF_UUID=u NF_SECRETS_RUN_ID=r1 NF_SECRETS_AWS_PREFIX=nf-secrets/r1/\n')
})
