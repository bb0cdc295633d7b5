// The run ledger on etcd (CLUSTER.md "Keys"): runs/<runId> holds a run's record (never a value). Reads come from a
// Replica; insert is create-only, update compares the mod revision of the record whose version the caller named,
// remove deletes. Same contract as the file ledger (test/store/contract/). The revoke path's best-effort writes
// (updateBestEffort) keep a change in memory when the cluster cannot be reached and write it at the next sync():
// the node goes on revoking during a quorum loss and the ledger learns it once quorum returns (CLUSTER.md "Engine
// outage").
import type { Namespace } from 'etcd3'
import { isCoded, nfsError } from '../../errors.js'
import type { RunRecord } from '../../types.js'
import type { LedgerChange, RunLedger } from '../run-ledger.js'
import { clusterError } from './etcd-client.js'
import { Replica, type ReplicaChange } from './replica.js'

const RUNS = 'runs/'

export interface EtcdRunLedgerOptions {
  ns: Namespace
  node: string
  /**
   * Cluster ownership: the operation that makes this node a new run's owner (put in the intent's transaction), and
   * the owner key every owner write is compared on (CLUSTER.md "Arm", "Ownership").
   */
  owner?: { claimOp: (runId: string) => unknown, key: (runId: string) => string, node: string }
}

/** The etcd ledger, with what cluster ownership needs beyond the interface: each run's mod revision as mirrored. */
export type EtcdRunLedger = RunLedger & { entries: () => Array<{ run: RunRecord, mod: number }> }

export async function openEtcdRunLedger (opts: EtcdRunLedgerOptions): Promise<EtcdRunLedger> {
  const { ns } = opts
  const replica = new Replica(ns, [RUNS], opts.node)
  await replica.start()
  const parsed = new Map<string, RunRecord>()
  for (const [k, e] of replica.list(RUNS)) parsed.set(k.slice(RUNS.length), JSON.parse(e.value.toString()) as RunRecord)
  // Changes made while etcd was out of reach: the truth for this node until a write carries them.
  const pending = new Map<string, RunRecord>()
  const listeners = new Set<(c: LedgerChange) => void>()
  let closed = false

  const emit = (change: LedgerChange): void => {
    for (const l of listeners) {
      try { l(change) } catch { /* not the writer's problem */ }
    }
  }
  replica.onChange((c: ReplicaChange) => {
    const runId = c.key.slice(RUNS.length)
    if (c.entry === null) {
      const gone = parsed.get(runId)
      parsed.delete(runId)
      if (gone !== undefined) emit({ revision: c.revision, op: 'delete', runId, version: gone.version })
    } else {
      const rec = JSON.parse(c.entry.value.toString()) as RunRecord
      parsed.set(runId, rec)
      const mine = pending.get(runId)
      if (mine !== undefined && mine.version <= rec.version) pending.delete(runId)
      emit({ revision: c.revision, op: 'put', runId, version: rec.version })
    }
  })

  const current = (runId: string): RunRecord | undefined => pending.get(runId) ?? parsed.get(runId)

  // This node's writes of one run go one after another (the file ledger's queue, per record).
  const queues = new Map<string, Promise<unknown>>()
  const serial = async <T>(runId: string, fn: () => Promise<T>): Promise<T> => {
    const mine = (queues.get(runId) ?? Promise.resolve()).then(fn, fn)
    const tail = mine.catch(() => {})
    queues.set(runId, tail)
    void tail.then(() => { if (queues.get(runId) === tail) queues.delete(runId) })
    return await mine
  }

  async function commit (runId: string, compareMod: number, rec: RunRecord, asOwner = false): Promise<boolean> {
    if (closed) throw nfsError('NFS_ERR_STORAGE', ['the cluster ledger', 'it is closed'])
    let res
    try {
      let txn = ns.if(RUNS + runId, compareMod === 0 ? 'Create' : 'Mod', '==', compareMod)
      const ops: unknown[] = [ns.put(RUNS + runId).value(JSON.stringify(rec))]
      if (opts.owner !== undefined && compareMod === 0) ops.push(opts.owner.claimOp(runId))
      if (opts.owner !== undefined && asOwner) txn = txn.and(opts.owner.key(runId), 'Value', '==', opts.owner.node)
      res = await txn.then(...(ops as never[])).commit()
    } catch (err) {
      throw clusterError(err, `writing run ${runId}`)
    }
    if (res.succeeded) await replica.waitFor(Number(res.header.revision))
    return res.succeeded
  }

  async function apply (runId: string, expectedVersion: number, change: (run: RunRecord) => RunRecord | null, bestEffort: boolean, asOwner = false): Promise<{ run: RunRecord, durable: boolean }> {
    let cur = current(runId)
    if (cur !== undefined && cur.version !== expectedVersion && !pending.has(runId)) {
      // The mirror may lag a write the caller has seen: read fresh before calling it a conflict.
      await replica.barrier()
      cur = current(runId)
    }
    if (cur === undefined) throw nfsError('NFS_ERR_RUN_NOT_FOUND', [runId])
    if (cur.version !== expectedVersion) throw nfsError('NFS_ERR_CONFLICT', [`run ${runId} changed (version ${cur.version}, expected ${expectedVersion})`])
    const changed = change(structuredClone(cur))
    if (changed === null) return { run: cur, durable: !pending.has(runId) }
    const rec: RunRecord = { ...changed, runId, version: cur.version + 1 }
    const base = replica.get(RUNS + runId)
    try {
      if (!(await commit(runId, base?.mod ?? 0, rec, asOwner))) throw nfsError('NFS_ERR_CONFLICT', [`run ${runId} changed on another node, or this node no longer owns it`])
    } catch (err) {
      if (!bestEffort || !isCoded(err, 'NFS_ERR_CLUSTER_UNAVAILABLE')) throw err
      pending.set(runId, rec)
      emit({ revision: replica.revision, op: 'put', runId, version: rec.version })
      return { run: rec, durable: false }
    }
    pending.delete(runId)
    return { run: rec, durable: true }
  }

  return {
    get revision () { return replica.revision },
    settle: async (atLeast) => {
      if (atLeast !== undefined) {
        await replica.waitFor(atLeast)
        return replica.revision
      }
      return await replica.barrier()
    },
    onChange: (listener) => {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    },
    all: () => {
      const out = new Map(parsed)
      for (const [id, r] of pending) out.set(id, r)
      return [...out.values()]
    },
    get: current,
    insert: async (run) => await serial(run.runId, async () => {
      const rec: RunRecord = { ...run, version: 1 }
      if (!(await commit(run.runId, 0, rec))) throw nfsError('NFS_ERR_CONFLICT', [`run ${run.runId} already exists`])
      return rec
    }),
    update: async (runId, expectedVersion, change, o) => await serial(runId, async () => (await apply(runId, expectedVersion, change, false, o?.asOwner)).run),
    updateBestEffort: async (runId, expectedVersion, change, o) => await serial(runId, async () => await apply(runId, expectedVersion, change, true, o?.asOwner)),
    entries: () => [...parsed].map(([id, run]) => ({ run, mod: replica.get(RUNS + id)?.mod ?? 0 })),
    unsynced: () => [...pending.keys()],
    sync: async () => {
      for (const [runId, rec] of [...pending]) {
        await serial(runId, async () => {
          if (pending.get(runId) !== rec) return
          const base = replica.get(RUNS + runId)
          // Another node moved the run on meanwhile: its record wins and ours is dropped (revoking is idempotent).
          if (base !== undefined && (JSON.parse(base.value.toString()) as RunRecord).version >= rec.version) {
            pending.delete(runId)
            return
          }
          if (await commit(runId, base?.mod ?? 0, rec)) pending.delete(runId)
        })
      }
    },
    remove: async (runIds) => {
      const present = runIds.filter(id => parsed.has(id) || pending.has(id))
      if (present.length === 0) return 0
      let res
      try {
        // One transaction, so a prune is all or nothing; the compare always holds (an absent key has version 0).
        res = await ns.if(RUNS + present[0]!, 'Version', '>', -1).then(...present.map(id => ns.delete().key(RUNS + id))).commit()
      } catch (err) {
        throw clusterError(err, 'removing runs')
      }
      await replica.waitFor(Number(res.header.revision))
      for (const id of present) pending.delete(id)
      return present.length
    },
    close: async () => {
      if (closed) return
      closed = true
      listeners.clear()
      await replica.close()
    }
  }
}
