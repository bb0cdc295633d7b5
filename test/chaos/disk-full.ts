// 5. Disk full: the state dir on a 1 MiB tmpfs. Secrets with large values fill it until a write fails; then a
// filler takes the last bytes. Every write must fail with NFS_ERR_STORAGE (507), store.json and runs.json must
// stay byte for byte what they were, no temp file may stay behind, and after space is freed a restarted daemon
// has every secret and run and can provision again. A revoke is the exception: it must not wait for space, so on
// the full disk it removes the run dir at once, and the ledger says so once space returns (the monitor's pass).
import type { Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from '../helpers/daemon.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { call, expectStatus, readLedger, revokeAllAndSettle, runDirs, settled, stableMeta } from './api.js'
import { spawnDaemon } from './daemon-proc.js'
import type { Harness } from './harness.js'
import { ledgerOnDisk } from '../helpers/ledger-file.js'

const BIG = 60_000

/** Fill a filesystem to the last byte; the filler's path is returned so it can be removed. */
function fill (dir: string): string {
  const filler = join(dir, 'filler')
  const chunk = Buffer.alloc(4096, 0x61)
  try {
    for (;;) appendFileSync(filler, chunk)
  } catch {}
  try {
    for (;;) appendFileSync(filler, 'a')
  } catch {}
  return filler
}

export async function diskFullSection (t: Test, h: Harness): Promise<void> {
  const dir = tempDir(t, 'nfs-chaos-disk-')
  const stateDir = join(dir, 'state')
  mkdirSync(stateDir, { mode: 0o700 })
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', stateDir])
  // Lazy: a daemon that failed to stop must not keep the mount (and the machine's tmpfs) around.
  t.teardown(() => { execFileSync('umount', ['-l', stateDir]) })
  const launchDir = join(dir, 'launch')
  mkdirSync(launchDir)
  // A short monitor pass: it is what writes the revoke's records once space returns.
  const config = { logLevel: 'info', runs: { livenessIntervalMs: 500 } }
  let d = await spawnDaemon(t, { mode: 'user', dir, config })
  await h.listen(d.socket)

  const values = new Map<string, string>()
  const add = async (name: string, value: string): Promise<{ status: number, code: unknown }> => {
    const r = await call(d.socket, 'POST', '/api/v1/secrets', { name, value })
    if (r.status === 201) values.set(name, value)
    return { status: r.status, code: (r.body as { code?: unknown } | null)?.code }
  }
  for (let i = 0; i < 3; i++) t.equal((await add(`DISK_S${i}`, h.canary('disk'))).status, 201)
  const armed = await expectStatus<{ runId: string }>(d.socket, 201, 'POST', '/api/v1/runs', { mode: 'arm', launchDir, targets: ['hpc'] })

  // Large values until the store no longer fits: the write that does not fit is refused, coded.
  let refusal: { status: number, code: unknown } | null = null
  for (let i = 0; i < 40 && refusal === null; i++) {
    const r = await add(`DISK_BIG${i}`, h.canary('diskbig', BIG))
    if (r.status !== 201) refusal = r
  }
  t.same(refusal, { status: 507, code: 'NFS_ERR_STORAGE' }, `the store filled up after ${values.size - 3} large secrets and the next write was refused, coded`)

  const storeBefore = readFileSync(join(stateDir, 'store.json'), 'utf8')
  const ledgerBefore = JSON.stringify(ledgerOnDisk(stateDir))
  const metaBefore = stableMeta(await expectStatus(d.socket, 200, 'GET', '/api/v1/secrets'))
  const filler = fill(stateDir)
  const attempts: Array<[string, string, string, unknown?]> = [
    ['create a secret', 'POST', '/api/v1/secrets', { name: 'DISK_LATE', value: h.canary('disklate') }],
    ['update a secret', 'PUT', '/api/v1/secrets/DISK_S0', { value: h.canary('diskupd') }],
    ['delete a secret', 'DELETE', '/api/v1/secrets/DISK_S1'],
    ['create a workspace', 'POST', '/api/v1/workspaces', { name: 'diskws' }],
    ['arm a run', 'POST', '/api/v1/runs', { mode: 'arm', launchDir, targets: ['hpc'] }]
  ]
  for (const [what, method, path, body] of attempts) {
    const r = await call(d.socket, method, path, body)
    t.same([r.status, (r.body as { code?: unknown } | null)?.code], [507, 'NFS_ERR_STORAGE'], `${what} on a full disk: 507 NFS_ERR_STORAGE`)
    h.figures.faultsInjected++
  }
  t.equal(readFileSync(join(stateDir, 'store.json'), 'utf8'), storeBefore, 'store.json is byte for byte what it was')
  t.equal(JSON.stringify(ledgerOnDisk(stateDir)), ledgerBefore, 'the ledger on disk (runs.json and its journal) is what it was')
  t.same(readdirSync(stateDir).filter(n => n.endsWith('.tmp')), [], 'no temp file was left behind')
  t.same(stableMeta(await expectStatus(d.socket, 200, 'GET', '/api/v1/secrets')), metaBefore, 'the daemon still serves the same metadata')
  t.equal((await call(d.socket, 'GET', '/api/v1/health')).status, 200, 'and is up')

  // Revoking does not wait for space: the run dir goes now, the new state is served from memory.
  t.same(runDirs(join(dir, 'runs')).filter(r => r.endsWith(armed.runId)).length, 1, 'the armed run has its run dir')
  const revoked = await expectStatus<{ state: string, targets: Record<string, { state: string }> }>(d.socket, 200, 'DELETE', `/api/v1/runs/${armed.runId}`)
  h.figures.faultsInjected++
  t.same([revoked.state, revoked.targets.hpc?.state], ['killed', 'revoked'], 'a revoke on the full disk is answered revoked')
  t.same(runDirs(join(dir, 'runs')), [], 'its run dir is gone while the disk is still full')
  t.equal(JSON.stringify(ledgerOnDisk(stateDir)), ledgerBefore, 'the ledger could not record it yet')
  const shown = await expectStatus<{ state: string }>(d.socket, 200, 'GET', `/api/v1/runs/${armed.runId}`)
  t.equal(shown.state, 'killed', 'the daemon shows the run ended')

  // Free the space: the monitor's next pass writes what was kept in memory, without a restart.
  rmSync(filler)
  const deadline = Date.now() + 20_000
  const recorded = (): boolean => readLedger(stateDir).some(r => r.runId === armed.runId && r.state === 'killed' && settled(r))
  const audited = (): boolean => readFileSync(join(stateDir, 'audit.log'), 'utf8').split('\n').some(l => l.includes('"action":"run.revoke"') && l.includes(armed.runId))
  while (!(recorded() && audited()) && Date.now() < deadline) await sleep(100)
  t.ok(recorded(), 'once space returns the ledger says killed and revoked')
  t.ok(audited(), 'and the audit log has the revoke')
  t.same(readdirSync(stateDir).filter(n => n.endsWith('.tmp')), [], 'no temp file was left behind by the retried writes')

  // Restart: everything is there and usable.
  await d.stop()
  h.captureDaemon('disk daemon (full)', d)
  d = await spawnDaemon(t, { mode: 'user', dir, config })
  await h.listen(d.socket)
  t.same(stableMeta(await expectStatus(d.socket, 200, 'GET', '/api/v1/secrets')), metaBefore, 'after a restart the store holds every secret')
  t.ok(readLedger(stateDir).some(r => r.runId === armed.runId && r.state === 'killed' && settled(r)), 'and the ledger the revoked run')
  const run = await expectStatus<{ runId: string, env: Record<string, string> }>(d.socket, 201, 'POST', '/api/v1/runs', { mode: 'arm', launchDir, targets: ['hpc'] })
  const store = JSON.parse(readFileSync(run.env.NXF_SECRETS_FILE!, 'utf8')) as Array<{ name: string, value: string }>
  t.same(store.map(e => [e.name, e.value]), [...values].sort(), 'every value still decrypts into a new run\'s store')
  h.figures.runs += 2
  await revokeAllAndSettle(d.socket, stateDir)
  t.same(runDirs(join(dir, 'runs')), [], 'every run revoked')
  await d.stop()
  h.captureDaemon('disk daemon', d)
}
