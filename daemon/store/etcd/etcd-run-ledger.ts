// The run ledger on etcd (CLUSTER.md "Keys"): runs/<runId> holds a run's record (never a value). Reads come from a
// Replica; insert is create-only (and counts its user's live runs in the same compare-and-swap: ARMS below), update
// compares the mod revision of the record whose version the caller named, remove deletes. Same contract as the file
// ledger (test/store/contract/). Records the cluster cannot take now (a quorum loss) are kept by
// runs/deferred-records.ts, as a full disk's are for the file ledger (CLUSTER.md "Engine outage"). A write whose answer
// was lost after it committed, and that the client tried again, is known by what it left (own-write.ts): the row's
// exact bytes and, for an insert or an owner's update with ownership, this node's name on the owner key; those two
// also when every try of the client's failed (read back once etcd answers again).
import type { Namespace } from 'etcd3'
import { nfsError } from '../../errors.js'
import type { RunRecord } from '../../types.js'
import { limitReached, liveRunsOf } from '../live-runs.js'
import type { LedgerChange, RunLedger } from '../run-ledger.js'
import { clusterError } from './etcd-client.js'
import { afterLostAnswer, ownWriteRevision, readBack, type Written } from './own-write.js'
import { Replica, type ReplicaChange } from './replica.js'

const RUNS = 'runs/'
/**
 * A user's arm sequence (uarms/<uid>): every insert of a run of that uid puts it. A limited insert (liveLimit: not an
 * admin's) compares it on the mod revision it had when the insert counted the uid's live runs; an admin's insert is not
 * limited and compares nothing, but moves it all the same, since its run counts against the user's next limited arm.
 * etcd compares revisions, not counts: a count taken on a mirror that holds this key at revision M holds every insert
 * of the user up to M (each put the row and the key in one transaction), so it is still true when the insert commits
 * with the key at M; otherwise the insert fails its compare, counts again and retries. Ends need no compare: they only
 * lower the count. The keys are never removed: one per uid that ever armed (docs/cluster.md "Keys" gives the bound).
 */
const ARMS = 'uarms/'
/** limited inserts retried after another node's arm of the same user went first, before giving up */
const INSERT_RETRIES = 10

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
export type EtcdRunLedger = RunLedger & {
  entries: () => Array<{ run: RunRecord, mod: number }>
  entry: (runId: string) => { run: RunRecord, mod: number } | undefined
}

export async function openEtcdRunLedger (opts: EtcdRunLedgerOptions): Promise<EtcdRunLedger> {
  const { ns } = opts
  const replica = new Replica(ns, [RUNS, ARMS], opts.node)
  await replica.start()
  const parsed = new Map<string, RunRecord>()
  for (const [k, e] of replica.list(RUNS)) parsed.set(k.slice(RUNS.length), JSON.parse(e.value.toString()) as RunRecord)
  const listeners = new Set<(c: LedgerChange) => void>()
  let closed = false

  const emit = (change: LedgerChange): void => {
    for (const l of listeners) {
      try { l(change) } catch { /* not the writer's problem */ }
    }
  }
  replica.onChange((c: ReplicaChange) => {
    if (!c.key.startsWith(RUNS)) return
    const runId = c.key.slice(RUNS.length)
    // The record before, as this node's mirror had it (after a resync, maybe several writes back).
    const previous = parsed.get(runId) ?? null
    if (c.entry === null) {
      parsed.delete(runId)
      if (previous !== null) emit({ revision: c.revision, op: 'delete', runId, version: previous.version, run: null, previous })
    } else {
      const rec = JSON.parse(c.entry.value.toString()) as RunRecord
      parsed.set(runId, rec)
      emit({ revision: c.revision, op: 'put', runId, version: rec.version, run: rec, previous })
    }
  })

  const current = (runId: string): RunRecord | undefined => parsed.get(runId)

  // This node's writes of one run go one after another (the file ledger's queue, per record); so do its limited
  // inserts of one user's runs, which would otherwise only make each other fail the arm sequence's compare.
  const queues = new Map<string, Promise<unknown>>()
  const serial = async <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const mine = (queues.get(key) ?? Promise.resolve()).then(fn, fn)
    const tail = mine.catch(() => {})
    queues.set(key, tail)
    void tail.then(() => { if (queues.get(key) === tail) queues.delete(key) })
    return await mine
  }

  /**
   * Our own write after a lost answer: an insert's row (a run id is new, and the record names its creation's
   * millisecond), with this node's name on the owner key it claimed; an owner's update, whose owner key only this
   * node writes. Any other update by its row's exact bytes (the version it made and every field as it wrote them):
   * a record names no writer, so another node's identical change from the same version reads as ours too, and both
   * answer done for the one change that was made. Read as a conflict instead, the retry (runs/transition.ts) found
   * its change already there and declined, and a caller that acts on what its change did acted on nothing: warnRun
   * recorded a warning that was never logged nor published, and the next pass sees it recorded.
   */
  const ownMarks = (runId: string, bytes: string, insert: boolean, asOwner: boolean): Written[] => {
    const row: Written = { key: RUNS + runId, value: bytes }
    if (!insert && !(asOwner && opts.owner !== undefined)) return [row]
    return opts.owner === undefined ? [row] : [row, { key: opts.owner.key(runId), value: opts.owner.node }]
  }

  /**
   * One write of a run's record. An insert also puts its user's arm sequence; a limited one compares it on `armsMod`.
   * 'done', or why not: 'taken' (the record is not what was expected: another node's write, or the id exists),
   * 'moved' (a limited insert whose user's arm sequence moved on: another arm of the user went first).
   */
  async function commit (runId: string, compareMod: number, rec: RunRecord, asOwner = false, armsMod: number | null = null): Promise<'done' | 'taken' | 'moved'> {
    if (closed) throw nfsError('NFS_ERR_STORAGE', ['the cluster ledger', 'it is closed'])
    const bytes = JSON.stringify(rec)
    const insert = compareMod === 0
    const mine = ownMarks(runId, bytes, insert, asOwner)
    let res
    try {
      let txn = ns.if(RUNS + runId, insert ? 'Create' : 'Mod', '==', compareMod)
      const ops: unknown[] = [ns.put(RUNS + runId).value(bytes)]
      // etcd never splits one revision's changes between two watch answers, and the mirror applies an answer at
      // once: no mirror holds the new sequence without the row it counts.
      if (insert) ops.push(ns.put(ARMS + rec.uid).value(runId))
      if (armsMod !== null) txn = txn.and(ARMS + rec.uid, 'Mod', '==', armsMod)
      if (opts.owner !== undefined && insert) ops.push(opts.owner.claimOp(runId))
      if (opts.owner !== undefined && asOwner) txn = txn.and(opts.owner.key(runId), 'Value', '==', opts.owner.node)
      res = await txn.then(...(ops as never[])).else(...readBack(ns, mine)).commit()
    } catch (err) {
      // Every try failed, the first perhaps after it committed: an arm must not answer "unavailable" for a row it
      // left (nothing would clean it up), nor its re-run "already exists". A plain update keeps its error without
      // the read-back's wait: every such write during a quorum loss would take that much longer to fail, and the
      // revoke path keeps its record anyway (runs/deferred-records.ts: forgotten once the ledger reaches it).
      const plain = !insert && !(asOwner && opts.owner !== undefined)
      const own = plain ? null : await afterLostAnswer(ns, mine)
      if (own === null) throw clusterError(err, `writing run ${runId}`)
      await replica.waitFor(own)
      return 'done'
    }
    if (res.succeeded) {
      await replica.waitFor(Number(res.header.revision))
      return 'done'
    }
    const own = ownWriteRevision(res, mine)
    if (own !== null) {
      await replica.waitFor(own)
      return 'done'
    }
    // An insert's failure branch reads its row first (ownMarks): absent, it was the arm sequence that moved.
    if (armsMod !== null && res.responses[0]?.response_range?.kvs.length === 0) return 'moved'
    return 'taken'
  }

  async function apply (runId: string, expectedVersion: number, change: (run: RunRecord) => RunRecord | null, asOwner = false): Promise<RunRecord> {
    let cur = current(runId)
    if (cur !== undefined && cur.version !== expectedVersion) {
      // The mirror may lag a write the caller has seen: read fresh before calling it a conflict.
      await replica.barrier()
      cur = current(runId)
    }
    if (cur === undefined) throw nfsError('NFS_ERR_RUN_NOT_FOUND', [runId])
    if (cur.version !== expectedVersion) throw nfsError('NFS_ERR_CONFLICT', [`run ${runId} changed (version ${cur.version}, expected ${expectedVersion})`])
    const changed = change(structuredClone(cur))
    if (changed === null) return cur
    const rec: RunRecord = { ...changed, runId, version: cur.version + 1 }
    const base = replica.get(RUNS + runId)
    if ((await commit(runId, base?.mod ?? 0, rec, asOwner)) !== 'done') throw nfsError('NFS_ERR_CONFLICT', [`run ${runId} changed on another node, or this node no longer owns it`])
    return rec
  }

  /**
   * A run this node already has is refused before the write: the same record inserted again by this node would
   * otherwise read back as its own write (its bytes and its owner key are this node's). Read fresh before calling it
   * taken.
   */
  const refuseKnown = async (runId: string): Promise<void> => {
    if (parsed.has(runId)) await replica.barrier()
    if (parsed.has(runId)) throw nfsError('NFS_ERR_CONFLICT', [`run ${runId} already exists`])
  }

  async function insertOnce (run: Omit<RunRecord, 'version'>): Promise<RunRecord> {
    await refuseKnown(run.runId)
    const rec: RunRecord = { ...run, version: 1 }
    if ((await commit(run.runId, 0, rec)) !== 'done') throw nfsError('NFS_ERR_CONFLICT', [`run ${run.runId} already exists`])
    return rec
  }

  /** An insert that counts the uid's live runs and commits only while that count still holds (ARMS). */
  async function insertLimited (run: Omit<RunRecord, 'version'>, limit: number): Promise<RunRecord> {
    await refuseKnown(run.runId)
    const rec: RunRecord = { ...run, version: 1 }
    let fresh = false
    for (let i = 0; ; i++) {
      if (parsed.has(run.runId)) throw nfsError('NFS_ERR_CONFLICT', [`run ${run.runId} already exists`])
      // The count and the sequence's revision are of one moment of the mirror (no await between them).
      const live = liveRunsOf(parsed.values(), run.uid)
      const armsMod = replica.get(ARMS + run.uid)?.mod ?? 0
      if (live >= limit) {
        // A run may have ended on another node that this mirror has not seen yet: read fresh before refusing.
        if (fresh) throw limitReached(limit, run.user, live)
        await replica.barrier()
        fresh = true
        continue
      }
      const done = await commit(run.runId, 0, rec, false, armsMod)
      if (done === 'done') return rec
      if (done === 'taken') throw nfsError('NFS_ERR_CONFLICT', [`run ${run.runId} already exists`])
      // The caller did nothing wrong and nothing conflicts with its request (a 409 tells the user to fix something):
      // the cluster was too busy with this user's arms to count them. The retryable answer (503, CLI exit 69).
      if (i >= INSERT_RETRIES) throw nfsError('NFS_ERR_CLUSTER_UNAVAILABLE', [`counting the live runs of ${run.user} for run ${run.runId} (other arms of the user on other nodes kept going first; try again)`])
      // Another node's arm of the user went first: count again once the mirror has it, after a jitter so two losers part.
      await new Promise(resolve => setTimeout(resolve, Math.random() * 20 * (i + 1)))
      await replica.barrier()
      fresh = true
    }
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
    all: () => [...parsed.values()],
    get: current,
    insert: async (run, o) => await serial(run.runId, async () => {
      const limit = o?.liveLimit
      if (limit === undefined) return await insertOnce(run)
      return await serial(`${ARMS}${run.uid}`, async () => await insertLimited(run, limit))
    }),
    update: async (runId, expectedVersion, change, o) => await serial(runId, async () => await apply(runId, expectedVersion, change, o?.asOwner)),
    entries: () => [...parsed].map(([id, run]) => ({ run, mod: replica.get(RUNS + id)?.mod ?? 0 })),
    entry: (runId) => {
      const run = parsed.get(runId)
      return run === undefined ? undefined : { run, mod: replica.get(RUNS + runId)?.mod ?? 0 }
    },
    remove: async (runIds) => {
      const present = runIds.filter(id => parsed.has(id))
      if (present.length === 0) return 0
      let res
      try {
        // One transaction, so a prune is all or nothing; the compare always holds (an absent key has version 0).
        res = await ns.if(RUNS + present[0]!, 'Version', '>', -1).then(...present.map(id => ns.delete().key(RUNS + id))).commit()
      } catch (err) {
        throw clusterError(err, 'removing runs')
      }
      // Keys another node removed first make a delete that changes nothing, and no event will carry the answer's
      // revision: wait only for what this transaction changed.
      const deleted = res.responses.reduce((n, r) => n + Number(r.response_delete_range?.deleted ?? 0), 0)
      if (deleted > 0) await replica.waitFor(Number(res.header.revision))
      return deleted
    },
    close: async () => {
      if (closed) return
      closed = true
      listeners.clear()
      await replica.close()
    }
  }
}
