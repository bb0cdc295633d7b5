// 1. Crash anywhere: runs (hpc and aws via moto) are armed, run, finished and revoked through the API while the
// daemon is SIGKILLed at random moments and restarted. Whatever instant a kill lands on (mid-provision, mid-revoke,
// mid-reconcile at start), the end state must be clean: no run dir, nothing in moto, the store as it was, and a
// terminal ledger with every target revoked.
import type { Test } from 'tap'
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { tempDir, type TestDaemon } from '../helpers/daemon.js'
import { AWS_ENV } from '../helpers/aws-daemon.js'
import { listAll, MOTO_REGION, type Moto } from '../helpers/moto.js'
import { call, expectStatus, readLedger, revokeAllAndSettle, runDirs, settled, stableMeta, TERMINAL } from './api.js'
import { killHard, spawnDaemon } from './daemon-proc.js'
import type { Harness } from './harness.js'

const RUNS = 200
const KILLS = 20
const WORKERS = 4
const SECRETS = 5

export async function crashSection (t: Test, h: Harness, moto: Moto): Promise<void> {
  await moto.reset()
  const dir = tempDir(t, 'nfs-chaos-crash-')
  const launchDir = join(dir, 'launch')
  mkdirSync(launchDir)
  const config = {
    aws: { region: MOTO_REGION, endpoint: moto.endpoint, rateLimitPerSecond: 200, maxConcurrency: 16 },
    runs: { livenessIntervalMs: 300, revokeRetryInitialMs: 100, revokeRetryMaxMs: 1000 }
  }
  const start = async (): Promise<TestDaemon> => {
    const d = await spawnDaemon(t, { mode: 'user', dir, config, env: AWS_ENV })
    await h.listen(d.socket)
    return d
  }
  let d = await start()
  const values = new Map<string, string>()
  for (let i = 0; i < SECRETS; i++) {
    const name = `CRASH_S${i}`
    values.set(name, h.canary('crash'))
    await expectStatus(d.socket, 201, 'POST', '/api/v1/secrets', { name, value: values.get(name) })
  }
  const before = stableMeta(await expectStatus(d.socket, 200, 'GET', '/api/v1/secrets'))

  let created = 0
  let kills = 0
  // Read through functions: the killer and the workers advance these counters for each other.
  const more = (): boolean => created < RUNS || kills < KILLS
  const runsMade = (): number => created
  let up = true
  const ids = new Set<string>()
  const refused: string[] = []

  // The killer: after a random number of runs and a random pause, SIGKILL, restart. One kill in five lands while
  // the daemon starts (reconciling what the last kill interrupted) instead.
  const killer = (async () => {
    while (more()) {
      const nextAt = runsMade() + h.int(0, Math.ceil(2 * RUNS / KILLS))
      const patience = Date.now() + 15_000
      while (runsMade() < nextAt && Date.now() < patience) await sleep(10)
      await sleep(h.int(0, 400))
      up = false
      await killHard(d)
      kills++
      if (h.random() < 0.2) {
        const starting = await spawnDaemon(t, { mode: 'user', dir, config, env: AWS_ENV, noWait: true })
        await sleep(h.int(50, 800))
        await killHard(starting)
        kills++
      }
      d = await start()
      up = true
    }
  })()

  // Each worker: a run of a random kind, then a random end (revoke, finish, or left live for the final sweep).
  const worker = async (): Promise<void> => {
    while (more()) {
      if (!up) { await sleep(20); continue }
      const targets = h.pick([['hpc'], ['aws'], ['hpc', 'aws']])
      const mode = h.pick(['arm', 'run'] as const)
      const only = h.random() < 0.3 ? [...values.keys()].slice(0, h.int(1, SECRETS)) : undefined
      const r = await call(d.socket, 'POST', '/api/v1/runs', { mode, launchDir, targets, ...(only !== undefined ? { only } : {}) }).catch(() => null)
      if (r === null) continue // the daemon went away mid-request; the restart cleans up whatever it had started
      if (r.status !== 201) { refused.push(`${r.status} ${r.text.slice(0, 200)}`); continue }
      const runId = (r.body as { runId: string }).runId
      ids.add(runId)
      created++
      const end = h.pick(['revoke', 'finish', 'leave'] as const)
      if (end === 'revoke') await call(d.socket, 'DELETE', `/api/v1/runs/${runId}`).catch(() => null)
      if (end === 'finish') await call(d.socket, 'POST', `/api/v1/runs/${runId}/finish`, { exitCode: h.int(0, 2) }).catch(() => null)
    }
  }
  await Promise.all([killer, ...Array.from({ length: WORKERS }, worker)])
  h.figures.kills += kills
  h.figures.runs += created
  t.ok(created >= RUNS, `${created} runs created`)
  t.ok(kills >= KILLS, `${kills} SIGKILLs, each followed by a restart`)
  t.same(refused, [], 'no request that reached a live daemon was refused')

  // What is left live is revoked through the API; every target must then reach `revoked`.
  const leftLive = await revokeAllAndSettle(d.socket, d.stateDir)
  t.comment(`crash: ${leftLive} runs were still live at the end and revoked through the API`)
  const ledger = readLedger(d.stateDir)
  const inLedger = new Set(ledger.map(r => r.runId))
  t.same([...ids].filter(id => !inLedger.has(id)), [], 'every created run is in the ledger')
  t.same(ledger.filter(r => !TERMINAL.has(r.state)).map(r => r.runId), [], 'every run is terminal')
  t.same(ledger.filter(r => !settled(r)).map(r => r.runId), [], 'every target of every run is revoked')
  t.same(runDirs(join(dir, 'runs')), [], 'no run dir is left')
  t.same((await listAll(moto.endpoint, true)).map(s => s.Name), [], 'no secret is left in moto, planned deletions included')
  t.same(stableMeta(await expectStatus(d.socket, 200, 'GET', '/api/v1/secrets')), before, 'no store entry was lost or changed')

  // Every value still decrypts to what was stored: a final run gets exactly the canaries.
  const final = await expectStatus<{ runId: string, env: Record<string, string> }>(d.socket, 201, 'POST', '/api/v1/runs', { mode: 'arm', launchDir, targets: ['hpc'] })
  const store = JSON.parse(readFileSync(final.env.NXF_SECRETS_FILE!, 'utf8')) as Array<{ name: string, value: string }>
  t.same(store.map(e => [e.name, e.value]), [...values].sort(), 'the final run\'s store holds every value')
  await expectStatus(d.socket, 200, 'DELETE', `/api/v1/runs/${final.runId}`)
  t.same(runDirs(join(dir, 'runs')), [], 'and its run dir goes at its revoke')
  h.figures.runs++
  h.captureDaemon('crash daemon', d)
}
