// Many cluster nodes in one process, for the herd and the chaos part: each node is the real membership, ownership and
// etcd ledger of a daemon (its own etcd connection, lease and replicas) plus the few lines of lifecycle that matter
// for takeover, written as the daemon does them: adopt when own/ keys go (one sweep at a time, and on a timer), then
// on each pass end every live run this node owns whose head's host is dead (runs/host-dead.ts) and revoke it. The
// revoke's side effect is a call to `onRevoke(runId, node)` made while the node owns the run, before the owner write
// that records it: a test counts those calls to find double revokes, as it counts DeleteSecret calls with real
// daemons. Twenty real daemons do not fit on CI's two cores beside the rest of the suite; these do.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Membership } from '../../daemon/cluster/membership.js'
import { EtcdOwnership } from '../../daemon/cluster/ownership.js'
import { hostDeadEnd } from '../../daemon/runs/host-dead.js'
import { connectEtcd } from '../../daemon/store/etcd/etcd-client.js'
import { openEtcdRunLedger, type EtcdRunLedger } from '../../daemon/store/etcd/etcd-run-ledger.js'
import { isTerminal, type RunRecord } from '../../daemon/types.js'

export interface OwnershipNode {
  name: string
  host: string
  membership: Membership
  ownership: EtcdOwnership
  ledger: EtcdRunLedger
  /** the ids this node adopted */
  adopted: string[]
  /** stop without a word (the lease is left to expire: as kill -9 does) */
  kill: () => Promise<void>
  /** a clean stop, giving the lease back */
  close: () => Promise<void>
}

export interface OwnershipNodeOptions {
  endpoints: string[]
  prefix: string
  name: string
  host?: string
  ttlSeconds?: number
  hostDeadAfterMs?: number
  /** how often the node's pass runs (the monitor's interval) */
  passMs?: number
  /** the revoke's side effect; called only while this node owns the run */
  onRevoke?: (runId: string, node: string) => void
  jitterMs?: () => number
}

function mapTargets (r: RunRecord, state: 'revoking' | 'revoked', at: string | null): RunRecord['targets'] {
  return Object.fromEntries(Object.entries(r.targets).map(([k, v]) => [k, { ...v, state, revokedAt: at }]))
}

export function newPrefix (): string {
  return `/nfs-test/${randomBytes(6).toString('hex')}/`
}

export async function startOwnershipNode (opts: OwnershipNodeOptions): Promise<OwnershipNode> {
  const host = opts.host ?? `h-${opts.name}`
  const conn = connectEtcd({ endpoints: opts.endpoints, prefix: opts.prefix })
  const stateDir = mkdtempSync(join(tmpdir(), `nfs-own-${opts.name}-`))
  const membership = await Membership.join({ client: conn.client, ns: conn.ns, node: opts.name, host, ttlSeconds: opts.ttlSeconds ?? 5, stateDir, version: 'test' })
  let ledger: EtcdRunLedger | null = null
  const ownership = await EtcdOwnership.open({
    ns: conn.ns,
    membership,
    runs: () => ledger?.entries() ?? [],
    hostDeadAfterMs: opts.hostDeadAfterMs ?? 10_000,
    ...(opts.jitterMs !== undefined ? { jitterMs: opts.jitterMs } : {})
  })
  ledger = await openEtcdRunLedger({ ns: conn.ns, node: opts.name, owner: { claimOp: id => ownership.claimOp(id), key: id => `own/${id}`, node: opts.name } })
  const led = ledger
  const adopted: string[] = []
  let stopped = false

  // As the daemon's backend does it: one adoption sweep at a time, another after it when deletes came meanwhile.
  let sweeping = false
  let again = false
  const sweep = (): void => {
    if (stopped) return
    if (sweeping) { again = true; return }
    sweeping = true
    ownership.adoptOrphans().then(ids => { adopted.push(...ids) }, () => {})
      .finally(() => { sweeping = false; if (again) { again = false; sweep() } })
  }
  const offOrphaned = ownership.onOrphaned(() => { sweep() })

  // As the lifecycle does it: the end is written first with the targets `revoking` (an owner write), then the
  // targets are touched, then `revoked` is recorded; a record that cannot be written is kept and written later
  // without touching the targets again. A run found `revoking` that this node did not touch (adopted from an owner
  // that died mid-revoke) is revoked again: revocation is idempotent, and that is the one case it repeats.
  const busy = new Set<string>()
  const touched = new Set<string>()
  const stamp = (): string => new Date().toISOString()
  async function step (run: RunRecord): Promise<void> {
    if (busy.has(run.runId) || !ownership.owns(run)) return
    busy.add(run.runId)
    try {
      let cur = run
      if (!isTerminal(cur.state)) {
        if (hostDeadEnd(cur, host, h => ownership.hostAlive(h)) === null) return
        const at = stamp()
        cur = await led.update(cur.runId, cur.version, r => ({
          ...r, state: 'killed', endedAt: at, endReason: 'host dead', targets: mapTargets(r, 'revoking', null)
        }), { asOwner: true })
      }
      if (!touched.has(cur.runId)) {
        if (!ownership.owns(cur)) return
        opts.onRevoke?.(cur.runId, opts.name)
        touched.add(cur.runId)
      }
      const at = stamp()
      await led.update(cur.runId, cur.version, r => ({ ...r, targets: mapTargets(r, 'revoked', at) }), { asOwner: true })
      touched.delete(cur.runId)
      await ownership.release(cur.runId)
    } catch {
      // etcd slow, another node moved the run on, or this one lost it: the next pass reads it again.
    } finally {
      busy.delete(run.runId)
    }
  }
  // As the daemon's per-user lanes do: one user's runs one after another, users side by side (up to 16 here).
  let inFlight = 0
  const lanes = new Set<string>()
  const run = (key: string, user: string, fn: () => Promise<void>): void => {
    if (inFlight >= 16 || busy.has(key) || lanes.has(user)) return
    lanes.add(user)
    inFlight++
    void fn().finally(() => { inFlight--; lanes.delete(user) })
  }
  const pass = (): void => {
    if (stopped) return
    for (const r of led.all()) {
      if (inFlight >= 16) return
      if (ownership.ownerOf(r.runId) !== opts.name) continue
      const revoked = Object.values(r.targets).every(tr => tr === undefined || tr.state === 'revoked')
      if (!isTerminal(r.state) || !revoked) run(r.runId, r.user, async () => { await step(r) })
      // A revoked run whose release failed is let go on a later pass.
      else run(`release:${r.runId}`, r.user, async () => { await ownership.release(r.runId).catch(() => {}) })
    }
  }
  const passTimer = setInterval(pass, opts.passMs ?? 250)
  const sweepTimer = setInterval(sweep, 5000)

  const halt = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    clearInterval(passTimer)
    clearInterval(sweepTimer)
    offOrphaned()
  }
  const closeParts = async (revoke: boolean): Promise<void> => {
    await membership.close({ revoke })
    await ownership.close().catch(() => {})
    await led.close().catch(() => {})
    conn.close()
    rmSync(stateDir, { recursive: true, force: true })
  }
  return {
    name: opts.name,
    host,
    membership,
    ownership,
    ledger: led,
    adopted,
    kill: async () => { await halt(); await closeParts(false) },
    close: async () => { await halt(); await closeParts(true) }
  }
}
