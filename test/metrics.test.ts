// GET /metrics: Prometheus text, parsed by a strict parser and checked series by series. The end-to-end part runs a
// real daemon (in this process) with the hpc target and moto as AWS, provisions and revokes real runs, and scrapes
// over the Unix socket; a canary secret's name and value must appear nowhere in the scrape.
import t, { type Test } from 'tap'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../daemon/config.js'
import { startDaemon } from '../daemon/daemon.js'
import { createMetrics, runsByState } from '../daemon/metrics.js'
import { call, daemonPaths, tempDir } from './helpers/daemon.js'
import { familyOf, parseExposition, sample, type Exposition } from './helpers/prom-text.js'
import { MOTO_CREDENTIALS, MOTO_REGION, startMoto } from './helpers/moto.js'
import { whyNoMoto } from './helpers/requires.js'
import { waitFor } from './helpers/wait.js'

t.setTimeout(300_000)

const CANARY_NAME = 'CANARY_METRICS_NAME'
const CANARY_VALUE = 'canary-metrics-value-7f3a'

/** Every family has HELP and TYPE; counters end in _total; histogram buckets never decrease. */
function wellFormed (t: Test, e: Exposition): void {
  for (const s of e.samples) {
    const family = familyOf(e, s.name)
    t.ok(family !== undefined && e.help.has(family), `${s.name} has HELP and TYPE`)
  }
  for (const [name, type] of e.types) {
    if (type === 'counter') t.match(name, /_total$/, `counter ${name} ends in _total`)
    if (type !== 'histogram') continue
    const buckets = e.samples.filter(s => s.name === `${name}_bucket`)
    const series = new Map<string, number[]>()
    for (const b of buckets) {
      const { le, ...rest } = b.labels
      const key = JSON.stringify(rest)
      series.set(key, [...(series.get(key) ?? []), b.value])
      t.ok(le !== undefined)
    }
    for (const values of series.values()) t.same([...values].sort((a, b) => a - b), values, `${name} buckets are cumulative`)
  }
}

t.test('pure parts: runs by state lists every state; the observer counts by target and outcome', async (t) => {
  const counts = runsByState([{ state: 'running' }, { state: 'running' }, { state: 'expired' }])
  t.same(Object.fromEntries(counts), { armed: 0, running: 2, completed: 0, failed: 0, killed: 0, expired: 1 })

  const m = createMetrics({
    ledger: { all: () => [] },
    targets: ['hpc'],
    watches: () => ({ roots: 2, launchDirs: 5, degraded: ['/scratch'] }),
    passes: () => 7,
    version: '9.9.9',
    mode: 'system'
  })
  m.observer.provisioned('hpc', false)
  m.observer.revoked('aws', false, 0.2)
  m.observer.revoked('aws', true, 3)
  m.observer.deferred?.('audit')
  const e = parseExposition(await m.render())
  wellFormed(t, e)
  t.equal(sample(e, 'nfsecretsd_provisions_total', { target: 'hpc', outcome: 'error' }), 1)
  t.equal(sample(e, 'nfsecretsd_provisions_total', { target: 'hpc', outcome: 'ok' }), 0, 'a configured target starts at zero')
  t.equal(sample(e, 'nfsecretsd_revokes_total', { target: 'aws', outcome: 'error' }), 1)
  t.equal(sample(e, 'nfsecretsd_revoke_duration_seconds_count', { target: 'aws' }), 2)
  t.equal(sample(e, 'nfsecretsd_revoke_duration_seconds_bucket', { target: 'aws', le: '0.25' }), 1)
  t.equal(sample(e, 'nfsecretsd_revoke_duration_seconds_bucket', { target: 'aws', le: '2.5' }), 1)
  t.equal(sample(e, 'nfsecretsd_revoke_duration_seconds_bucket', { target: 'aws', le: '5' }), 2)
  t.equal(sample(e, 'nfsecretsd_aws_calls_total'), 0, 'no AWS target: zero, still present')
  t.equal(sample(e, 'nfsecretsd_deferred_records_total', { what: 'audit' }), 1, 'a record kept in memory is counted')
  t.equal(sample(e, 'nfsecretsd_deferred_records_total', { what: 'ledger' }), 0)
  t.equal(sample(e, 'nfsecretsd_monitor_passes_total'), 7, 'the monitor\'s passes, read at the scrape')
  t.equal(sample(e, 'nfsecretsd_watch_roots'), 2)
  t.equal(sample(e, 'nfsecretsd_watched_launch_dirs'), 5)
  t.equal(sample(e, 'nfsecretsd_watch_degraded_roots'), 1)
  t.equal(sample(e, 'nfsecretsd_build_info', { version: '9.9.9', mode: 'system' }), 1)
  t.equal(e.types.get('nfsecretsd_revoke_duration_seconds'), 'histogram')
})

t.test('a real daemon: runs, provisions, revokes, latency, AWS calls, process metrics; no secret in any label', { skip: whyNoMoto() }, async (t) => {
  const moto = await startMoto(t)
  // The SDK's default credential chain, as on a real host.
  process.env.AWS_ACCESS_KEY_ID = MOTO_CREDENTIALS.accessKeyId
  process.env.AWS_SECRET_ACCESS_KEY = MOTO_CREDENTIALS.secretAccessKey
  const dir = tempDir(t, 'nfs-metrics-')
  const settings = { logLevel: 'silent', runs: { defaultTargets: ['hpc'] }, aws: { region: MOTO_REGION, endpoint: moto.endpoint } }
  const dirs = { ...daemonPaths(dir, settings), runsRoot: join(dir, 'runs'), launchDir: join(dir, 'launch') }
  mkdirSync(dirs.launchDir)
  const config = await loadConfig({ mode: 'user', config: dirs.configFile, socket: dirs.socket, stateDir: dirs.stateDir })
  const daemon = await startDaemon(config)
  t.teardown(() => daemon.stop('test'))
  const api = (method: string, path: string, body?: unknown): ReturnType<typeof call> => call(dirs.socket, method, path, body)

  t.equal((await api('POST', '/api/v1/secrets', { name: CANARY_NAME, value: CANARY_VALUE })).status, 201)

  // A provision that fails: the user's run dir is blocked by a file, so the hpc target refuses.
  mkdirSync(dirs.runsRoot, { recursive: true })
  writeFileSync(join(dirs.runsRoot, 'root'), 'in the way')
  const refused = await api('POST', '/api/v1/runs', { mode: 'run', launchDir: dirs.launchDir, targets: ['hpc'] })
  t.equal(refused.status >= 400, true, 'the blocked run is refused')
  rmSync(join(dirs.runsRoot, 'root'))
  // The refused run's hpc revoke met the same file and is retried with backoff: wait for that retry, so the counts
  // below do not depend on whether the scrape comes before it (under load it came first, or not).
  await waitFor('the refused run revoked', async () => {
    const runs = (await api('GET', '/api/v1/runs?all=true')).body as unknown as Array<{ state: string, targets: { hpc?: { state: string } } }>
    return runs.some(r => r.state === 'failed' && r.targets.hpc?.state === 'revoked')
  }, 30_000, 100)

  // A run to both targets that ends (revoked in both), and an armed run that stays.
  const done = await api('POST', '/api/v1/runs', { mode: 'run', launchDir: dirs.launchDir, targets: ['hpc', 'aws'] })
  t.equal(done.status, 201)
  const finished = await api('POST', `/api/v1/runs/${done.body.runId as string}/finish`, { exitCode: 0 })
  t.equal(finished.body.state, 'completed')
  const armed = await api('POST', '/api/v1/runs', { mode: 'arm', launchDir: dirs.launchDir, ttlSeconds: 3600 })
  t.equal(armed.status, 201)

  const scrape = await api('GET', '/metrics')
  t.equal(scrape.status, 200)
  t.match(scrape.text, /^# TYPE /m)
  const e = parseExposition(scrape.text)
  wellFormed(t, e)

  t.equal(sample(e, 'nfsecretsd_runs', { state: 'completed' }), 1)
  t.equal(sample(e, 'nfsecretsd_runs', { state: 'armed' }), 1)
  t.equal(sample(e, 'nfsecretsd_runs', { state: 'failed' }), 1, 'the refused run is recorded as failed')
  t.equal(sample(e, 'nfsecretsd_runs', { state: 'running' }), 0)
  t.equal(sample(e, 'nfsecretsd_run_targets', { target: 'hpc', state: 'provisioned' }), 1)
  t.equal(sample(e, 'nfsecretsd_run_targets', { target: 'aws', state: 'revoked' }), 1)
  t.equal(sample(e, 'nfsecretsd_provisions_total', { target: 'hpc', outcome: 'ok' }), 2)
  t.equal(sample(e, 'nfsecretsd_provisions_total', { target: 'hpc', outcome: 'error' }), 1)
  t.equal(sample(e, 'nfsecretsd_provisions_total', { target: 'aws', outcome: 'ok' }), 1)
  t.equal(sample(e, 'nfsecretsd_revokes_total', { target: 'hpc', outcome: 'ok' }), 2, 'the refused run\'s retry and the finished run')
  t.ok(sample(e, 'nfsecretsd_revokes_total', { target: 'hpc', outcome: 'error' }) >= 1, 'the refused run\'s first try')
  t.equal(sample(e, 'nfsecretsd_revokes_total', { target: 'aws', outcome: 'ok' }), 1)
  t.equal(sample(e, 'nfsecretsd_revoke_duration_seconds_count', { target: 'aws' }), 1)
  t.equal(sample(e, 'nfsecretsd_revoke_duration_seconds_bucket', { target: 'aws', le: '+Inf' }), 1)
  t.ok(sample(e, 'nfsecretsd_revoke_duration_seconds_sum', { target: 'aws' }) > 0)
  t.ok(sample(e, 'nfsecretsd_aws_calls_total') >= 2, 'a create and a delete reached moto')
  t.equal(sample(e, 'nfsecretsd_aws_throttles_total'), 0)
  t.equal(sample(e, 'nfsecretsd_aws_retries_total'), 0)
  t.equal(sample(e, 'nfsecretsd_watched_launch_dirs'), 0)
  t.ok(sample(e, 'nfsecretsd_process_cpu_user_seconds_total') > 0, 'process metrics')
  t.ok(sample(e, 'nfsecretsd_process_resident_memory_bytes') > 0)
  t.equal(sample(e, 'nfsecretsd_build_info', { mode: 'user' }), 1)

  // Nothing that names a secret, a user's files or a run leaks into the scrape: labels hold fixed vocabularies.
  for (const needle of [CANARY_NAME, CANARY_VALUE, dirs.launchDir, done.body.runId as string]) {
    t.equal(scrape.text.includes(needle), false, `${needle.slice(0, 24)} is not in the scrape`)
  }
  const ours = e.samples.filter(s => !/^nfsecretsd_(nodejs|process)_/.test(s.name))
  const labelKeys = new Set(ours.flatMap(s => Object.keys(s.labels)))
  t.same([...labelKeys].sort(), ['le', 'mode', 'outcome', 'state', 'target', 'version', 'what'], 'the only label names of our series')
})
