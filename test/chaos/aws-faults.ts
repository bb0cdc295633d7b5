// 2. AWS faults through the daemon: its aws endpoint is a proxy to moto that throttles, fails with 5xx, slows and
// drops connections (before or after moto acted) on 30% of calls. Whatever the dice: a run is either wholly in
// moto or absent from it (no partial provision), a failed provision is coded, and every revoke completes.
import type { Test } from 'tap'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from '../helpers/daemon.js'
import { AWS_ENV } from '../helpers/aws-daemon.js'
import { startFaultProxy } from '../helpers/fault-proxy.js'
import { getValue, listAll, MOTO_REGION, type Moto, type MotoSecret } from '../helpers/moto.js'
import { call, expectStatus, readLedger, runDirs, settled, waitUntil } from './api.js'
import { spawnDaemon } from './daemon-proc.js'
import type { Harness } from './harness.js'

const RUNS = 30
const CONCURRENCY = 6
const SECRETS = 6
const PREFIX = 'nf-secrets/'

function byRun (secrets: MotoSecret[]): Map<string, MotoSecret[]> {
  const out = new Map<string, MotoSecret[]>()
  for (const s of secrets) {
    const runId = s.Name.slice(PREFIX.length).split('/')[0]!
    out.set(runId, [...(out.get(runId) ?? []), s])
  }
  return out
}

export async function awsFaultsSection (t: Test, h: Harness, moto: Moto): Promise<void> {
  await moto.reset()
  const proxySeed = Math.floor(h.random() * 2 ** 31)
  t.comment(`fault proxy seed ${proxySeed}`)
  const proxy = await startFaultProxy(t, moto.endpoint, {
    seed: proxySeed,
    rates: { throttle: 0.1, serverError: 0.08, dropBefore: 0.04, dropAfter: 0.08, latencyMs: [0, 40] }
  })
  // Some creates are refused outright (AccessDenied is not retried), so the all-or-nothing rollback is walked under
  // the same faults, and its own DeleteSecret calls meet them too.
  proxy.setRule((op, body) => op === 'CreateSecret' && String(body.Name).endsWith('/AWS_S5') && h.random() < 0.25 ? 'denied' : undefined)
  const dir = tempDir(t, 'nfs-chaos-aws-')
  const launchDir = join(dir, 'launch')
  mkdirSync(launchDir)
  const d = await spawnDaemon(t, {
    mode: 'user',
    dir,
    env: AWS_ENV,
    config: {
      logLevel: 'info',
      aws: { region: MOTO_REGION, endpoint: proxy.endpoint, rateLimitPerSecond: 100, maxConcurrency: 8 },
      runs: { livenessIntervalMs: 500, revokeRetryInitialMs: 100, revokeRetryMaxMs: 1000 }
    }
  })
  await h.listen(d.socket)
  const values = new Map<string, string>()
  for (let i = 0; i < SECRETS; i++) {
    values.set(`AWS_S${i}`, h.canary('aws'))
    await expectStatus(d.socket, 201, 'POST', '/api/v1/secrets', { name: `AWS_S${i}`, value: values.get(`AWS_S${i}`) })
  }

  const ok = new Set<string>()
  const refusals: string[] = []
  let started = 0
  const worker = async (): Promise<void> => {
    while (started < RUNS) {
      started++
      const targets = h.pick([['aws'], ['hpc', 'aws']])
      const r = await call(d.socket, 'POST', '/api/v1/runs', { mode: 'arm', launchDir, targets })
      if (r.status === 201) ok.add((r.body as { runId: string }).runId)
      else refusals.push(`${r.status} ${(r.body as { code?: string } | null)?.code ?? r.text.slice(0, 200)}`)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  h.figures.runs += started
  t.comment(`aws: ${ok.size} of ${RUNS} runs provisioned under faults; refused: ${refusals.join(', ') || 'none'}`)
  t.ok(ok.size > 0, 'some runs got through the faults')
  t.ok(refusals.length > 0, 'and some were refused part-way, so rollbacks ran under faults')
  t.same(refusals.filter(x => !/^502 NFS_ERR_PROVISION_FAILED$/.test(x)), [], 'a refused provision is 502 NFS_ERR_PROVISION_FAILED, nothing else')

  // A failed provision removes what it placed, retrying through the faults; once it has settled nothing is left.
  const failed = readLedger(d.stateDir).filter(r => !ok.has(r.runId)).map(r => r.runId)
  t.equal(failed.length, refusals.length, 'each refusal is a failed run in the ledger')
  await waitUntil('the failed runs settled', () => readLedger(d.stateDir).filter(r => failed.includes(r.runId)).every(settled), 120_000, 200)
  const live = byRun(await listAll(moto.endpoint, true))
  const partial: string[] = []
  for (const runId of ok) {
    const mine = live.get(runId) ?? []
    const names = mine.filter(s => s.DeletedDate == null).map(s => s.Name.slice(`${PREFIX}${runId}/`.length)).sort()
    if (JSON.stringify(names) !== JSON.stringify([...values.keys()].sort())) partial.push(`${runId}: ${names.join(',')}`)
  }
  for (const runId of failed) if (live.has(runId)) partial.push(`${runId} (failed): ${live.get(runId)!.map(s => s.Name).join(',')}`)
  t.same(partial, [], 'every provisioned run is wholly in moto, every failed one wholly absent')
  const sample = [...ok][0]
  if (sample !== undefined) {
    for (const s of live.get(sample) ?? []) t.equal(await getValue(moto.endpoint, s.ARN), values.get(s.Name.split('/').pop()!), `${s.Name}: the value arrived intact`)
  }

  // Revoke all through the API under the same faults: a revoke that fails now is retried until it is done.
  const answers: string[] = []
  await Promise.all([...ok].map(async runId => {
    const r = await call(d.socket, 'DELETE', `/api/v1/runs/${runId}`)
    if (r.status !== 200) answers.push(`${runId}: ${r.status} ${r.text.slice(0, 200)}`)
  }))
  t.same(answers, [], 'every revoke request was accepted')
  await waitUntil('every run revoked in the ledger', () => readLedger(d.stateDir).every(settled), 180_000, 200)
  t.same((await listAll(moto.endpoint, true)).map(s => s.Name), [], 'every revoke done: moto is empty, planned deletions included')
  t.same(runDirs(join(dir, 'runs')), [], 'and no hpc run dir is left')
  const injected = proxy.injected()
  const total = Object.values(injected).reduce((a, b) => a + b, 0)
  h.figures.faultsInjected += total
  t.ok(injected.throttle > 0 && injected['server-error'] > 0 && injected['drop-before'] > 0 && injected['drop-after'] > 0, `faults of every kind were injected: ${JSON.stringify(injected)}`)
  await d.stop()
  h.captureDaemon('aws daemon', d)
}
