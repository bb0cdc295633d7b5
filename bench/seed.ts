// Writes a daemon's state files directly in their formats (store.json, runs.json or runs-archive/, master.key), so a benchmark can
// start a daemon with 5,000 secrets and 10,000 runs in a second instead of minutes of API calls. The sealing is the
// store's own (crypto.seal for each value, store-seal.ts for the file), so the daemon reads it as it would its own file.
import { mkdirSync, writeFileSync } from 'node:fs'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { generateKey, keyId, seal } from '../daemon/store/crypto.js'
import { encodeKey } from '../daemon/store/key.js'
import { sealedStoreText } from '../daemon/store/store-seal.js'
import { SecretValue } from '../daemon/secret-value.js'
import type { SecretRecord, StoreData } from '../daemon/store/store-format.js'
import type { RunRecord, Scope, Workspace } from '../daemon/types.js'

export interface SeedOptions {
  stateDir: string
  user: string
  uid: number
  gid: number
  /** secrets in the user's own scope (names U0000, U0001, ...) */
  userSecrets: number
  /** secrets of the workspace `bench`, of which the user is owner (names W0000, ...) */
  workspaceSecrets: number
  /** terminal runs, every target revoked, ended an hour ago */
  runs: number
  /**
   * where those runs are written: 'archive' (the default), `runs-archive/<day>.jsonl`, where the daemon keeps runs
   * settled for more than 5 minutes; 'hot', runs.json, as a ledger written before the archive existed holds them
   * (the daemon then moves them at its first monitor pass; a build without the archive keeps them there)
   */
  runsIn?: 'archive' | 'hot'
  runsRoot: string
}

export const BENCH_WORKSPACE = 'bench'

export function userSecretNames (n: number): string[] {
  return Array.from({ length: n }, (_, i) => `U${String(i).padStart(4, '0')}`)
}

function secret (key: Buffer, scope: Scope, name: string, user: string, at: string): SecretRecord {
  // Values are random filler of a typical token's length; they never leave this function but sealed.
  const value = new SecretValue(`v-${randomUUID()}-${randomUUID()}`)
  return { name, scope, createdAt: at, createdBy: user, updatedAt: at, updatedBy: user, lastUsed: null, version: 1, sealed: seal(key, scope, name, value) }
}

function terminalRun (i: number, o: SeedOptions, at: string): RunRecord {
  const runId = `B${String(i).padStart(13, '0')}`
  return {
    runId,
    sessionId: randomUUID(),
    user: o.user,
    uid: o.uid,
    gid: o.gid,
    workspace: 'personal',
    launchDir: `/nonexistent/bench/launch-${i}`,
    host: 'bench-host',
    mode: 'arm',
    names: userSecretNames(Math.min(20, o.userSecrets)),
    targets: { hpc: { state: 'revoked', attempts: 1, nextAttemptAt: null, lastError: null, refs: [{ name: 'U0000', ref: join(o.runsRoot, o.user, runId, 'store.json') }], revokedAt: at } },
    state: 'completed',
    env: {},
    createdAt: at,
    startedAt: at,
    endedAt: at,
    expiresAt: null,
    endReason: 'history OK',
    exitCode: null,
    signal: null,
    pid: null,
    pidStart: null,
    slurmJobId: null,
    runName: `bench_run_${i}`,
    historyMark: 0,
    version: 3
  }
}

/** Create the state dir (0700) with a fresh key, the store and the ledger. */
export function seedState (o: SeedOptions): void {
  mkdirSync(o.stateDir, { recursive: true, mode: 0o700 })
  const key = generateKey()
  writeFileSync(join(o.stateDir, 'master.key'), encodeKey(key), { mode: 0o600 })
  const at = new Date().toISOString()
  const secrets: SecretRecord[] = []
  for (const name of userSecretNames(o.userSecrets)) secrets.push(secret(key, `user:${o.user}`, name, o.user, at))
  for (let i = 0; i < o.workspaceSecrets; i++) secrets.push(secret(key, `workspace:${BENCH_WORKSPACE}`, `W${String(i).padStart(4, '0')}`, o.user, at))
  const workspaces: Workspace[] = o.workspaceSecrets > 0 ? [{ name: BENCH_WORKSPACE, members: { [o.user]: 'owner' }, groups: {}, createdAt: at, createdBy: o.user, version: 1 }] : []
  const store: StoreData = { format: 1, keyId: keyId(key), secrets, workspaces }
  // Sealed as the daemon seals each of its writes (store-seal.ts): the store a daemon finds at its next start.
  // NFS_BENCH_UNSEALED=1 writes it as an older daemon did, without the seal (every value verified at start).
  writeFileSync(join(o.stateDir, 'store.json'), process.env.NFS_BENCH_UNSEALED === '1' ? `${JSON.stringify(store)}\n` : sealedStoreText(store, key), { mode: 0o600 })
  if (o.runs > 0) {
    const ended = new Date(Date.now() - 3_600_000).toISOString()
    const runs = Array.from({ length: o.runs }, (_, i) => terminalRun(i, o, ended))
    if (o.runsIn === 'hot') {
      writeFileSync(join(o.stateDir, 'runs.json'), `${JSON.stringify({ format: 1, runs })}\n`, { mode: 0o600 })
    } else {
      const archive = join(o.stateDir, 'runs-archive')
      mkdirSync(archive, { mode: 0o700 })
      writeFileSync(join(archive, `${ended.slice(0, 10)}.jsonl`), runs.map(r => `${JSON.stringify(r)}\n`).join(''), { mode: 0o600 })
    }
  }
}
