// 6. Load: a system-mode daemon, 50 runs armed at once with the real CLI by alice, bob and carol (each its own
// process, identified by SO_PEERCRED) while root keeps updating the workspace secret they share to v1, v2, ...
// Each run's store.json must hold a version that was current at some instant of its request: at least the last
// update answered before the request was sent, at most the last update sent before it was answered. Every run is
// then revoked by its own user; no request may fail.
import type { Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { tempDir } from '../helpers/daemon.js'
import { runCli, type RunResult } from '../helpers/cli.js'
import { ensureUsers } from '../helpers/users.js'
import { call, expectStatus, readLedger, runDirs, settled, waitUntil } from './api.js'
import { spawnDaemon } from './daemon-proc.js'
import type { Harness } from './harness.js'

const RUNS = 50
const USERS = ['alice', 'bob', 'carol'] as const

function makeKeyFile (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-chaos-key-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const keyFile = join(dir, 'master.key')
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  return keyFile
}

export async function loadSection (t: Test, h: Harness): Promise<void> {
  const users = ensureUsers(USERS)
  const dir = tempDir(t, 'nfs-chaos-load-')
  const d = await spawnDaemon(t, { mode: 'system', dir, config: { keyFile: makeKeyFile(t), logLevel: 'info', runs: { livenessIntervalMs: 500 } } })
  await h.listen(d.socket)
  const cli = async (user: string, args: string[], input?: string): Promise<RunResult> => {
    const r = await runCli(args, { user, env: { NF_SECRETS_SOCKET: d.socket }, timeoutMs: 240_000, ...(input !== undefined ? { input } : {}) })
    h.addText(`load CLI output of ${user}`, r.stdout + r.stderr)
    return r
  }

  // root is a system admin (it may create workspaces) but writes a workspace's secrets only as a member.
  await expectStatus(d.socket, 201, 'POST', '/api/v1/workspaces', { name: 'lab', owner: 'root' })
  for (const u of USERS) await expectStatus(d.socket, 200, 'PUT', `/api/v1/workspaces/lab/members/${u}`, { role: 'launch' })
  // Versioned values share one random core, so the leak scan catches any version.
  const base = h.canary('load')
  const versioned = (n: number): string => `${base}-v${n}`
  await expectStatus(d.socket, 201, 'POST', '/api/v1/secrets', { name: 'LOAD_V', value: versioned(0), workspace: 'lab' })
  const own = new Map<string, string>()
  const launchDirs = new Map<string, string>()
  for (const u of users) {
    own.set(u.name, h.canary(`own${u.name}`))
    const add = await cli(u.name, ['secrets', 'add', 'OWN_TOKEN'], own.get(u.name))
    t.equal(add.code, 0, `${u.name} adds a user secret: ${add.stderr}`)
    const ld = join(dir, `launch-${u.name}`)
    mkdirSync(ld, { mode: 0o700 })
    chownSync(ld, u.uid, u.gid)
    launchDirs.set(u.name, ld)
  }

  // The updater: `sent` counts updates on their way, `committed` those answered. Versions only go up.
  let sent = 0
  let committed = 0
  const arming = new AbortController() // aborted when every arm has answered
  const updateFailures: string[] = []
  const versions: number[] = []
  const updater = (async () => {
    while (!arming.signal.aborted) {
      const n = ++sent
      const r = await call(d.socket, 'PUT', '/api/v1/secrets/LOAD_V', { value: versioned(n), workspace: 'lab' })
      if (r.status !== 200) updateFailures.push(`v${n}: ${r.status} ${r.text.slice(0, 200)}`)
      else { committed = n; versions.push((r.body as { version: number }).version) }
    }
  })()

  interface Armed { user: string, lo: number, hi: number, result: RunResult }
  const arms = await Promise.all(Array.from({ length: RUNS }, async (_, i): Promise<Armed> => {
    const user = USERS[i % USERS.length]!
    const lo = committed
    const result = await cli(user, ['-w', 'lab', 'arm', '--dir', launchDirs.get(user)!, '--format', 'json'])
    return { user, lo, hi: sent, result }
  }))
  arming.abort()
  await updater
  h.figures.runs += RUNS
  t.same(updateFailures, [], `${committed} updates of the shared secret, none failed`)
  t.ok(versions.every((v, i) => i === 0 || v > versions[i - 1]!), 'its version only went up')
  t.same(arms.filter(a => a.result.code !== 0).map(a => `${a.user}: ${a.result.stderr}`), [], `all ${RUNS} arms succeeded`)

  const wrong: string[] = []
  const seen = new Set<number>()
  const runs: Array<{ user: string, runId: string }> = []
  for (const a of arms) {
    if (a.result.code !== 0) continue
    const { runId, env } = JSON.parse(a.result.stdout) as { runId: string, env: Record<string, string> }
    runs.push({ user: a.user, runId })
    const store = new Map((JSON.parse(readFileSync(env.NXF_SECRETS_FILE!, 'utf8')) as Array<{ name: string, value: string }>).map(e => [e.name, e.value]))
    const v = Number(/-v(\d+)$/.exec(store.get('LOAD_V') ?? '')?.[1] ?? NaN)
    seen.add(v)
    if (!(v >= a.lo && v <= a.hi)) wrong.push(`${runId} of ${a.user} got v${v}, current during its request were v${a.lo}..v${a.hi}`)
    if (store.get('OWN_TOKEN') !== own.get(a.user)) wrong.push(`${runId} of ${a.user} did not get its own user's OWN_TOKEN`)
  }
  t.same(wrong, [], 'every run got the values current at its start, and its own user\'s')
  t.comment(`load: ${committed} updates during the arms; the runs saw ${seen.size} distinct versions`)

  const revokes = await Promise.all(runs.map(async r => ({ ...r, result: await cli(r.user, ['runs', 'revoke', r.runId]) })))
  t.same(revokes.filter(r => r.result.code !== 0).map(r => `${r.user} ${r.runId}: ${r.result.stderr}`), [], 'every run revoked by its own user')
  await waitUntil('every load run settled', () => readLedger(d.stateDir).every(settled), 60_000, 200)
  t.same(runDirs(join(dir, 'runs')), [], 'no run dir is left')
  await d.stop()
  h.captureDaemon('load daemon', d)
}
