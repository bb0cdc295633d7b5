// Cluster mode's backends for the composition root (CLUSTER.md): the etcd secrets store, run ledger, membership and
// ownership in place of the local files, opened in dependency order and closed in the reverse one. daemon.ts imports
// this file only when the config has a `cluster` section, so single-node daemons never load the gRPC client.
//
// Start-up when etcd cannot be reached: the daemon tries for START_WAIT_MS with backoff, logging each failure, then
// exits 69 (NFS_ERR_CLUSTER_UNAVAILABLE, EX_UNAVAILABLE); the unit's Restart=on-failure starts it again. Serving the
// local socket without the cluster would only answer every arm and secret write with 503, and a daemon that looks up
// but is not is worse for an admin than one that says why it stopped. A node name held by a live daemon: exit 78.
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import type { ClusterConfig } from '../config.js'
import type { Logger } from '../logger.js'
import type { SecretsStore } from '../store/secrets-store.js'
import { clusterError, connectEtcd, type EtcdConnection } from '../store/etcd/etcd-client.js'
import { openEtcdRunLedger, type EtcdRunLedger } from '../store/etcd/etcd-run-ledger.js'
import { openEtcdSecretsStore } from '../store/etcd/etcd-secrets-store.js'
import { memberAskers } from './leader-word.js'
import { Membership } from './membership.js'
import { EtcdOwnership } from './ownership.js'
import { localWatchRootCount } from './import.js'
import { EtcdWatchRoots } from './watch-roots.js'
import { startAdoptSweeps } from './adopt-sweeps.js'

/** how long a start waits for etcd before it gives up with exit 69 */
export const START_WAIT_MS = 30_000

export interface ClusterStatus {
  node: string
  nodes: Array<{ name: string, alive: boolean, runs: number }>
  etcd: { endpoints: string[], healthy: boolean, revision: number }
}

export interface ClusterBackend {
  node: string
  store: SecretsStore
  ledger: EtcdRunLedger
  ownership: EtcdOwnership
  membership: Membership
  /** the shared watch roots and which node polls each (the watch service follows them) */
  watchRoots: EtcdWatchRoots
  /** the node that answers for the run's end now (null: none, its lease is gone and nobody adopted it yet) */
  ownerOf: (runId: string) => string | null
  status: () => Promise<ClusterStatus>
  /** start adopting orphaned runs (after the lifecycle is up); `onAdopted` hears the ids taken over */
  startAdopting: (onAdopted: (runIds: string[]) => void) => void
  close: () => Promise<void>
}

export interface ClusterBackendOptions {
  cluster: ClusterConfig
  stateDir: string
  key: Buffer
  version: string
  logger: Logger
  startWaitMs?: number
}

/** Wait until etcd answers a read that needs quorum; the revision it answered at. */
async function reachable (conn: EtcdConnection, log: Logger, waitMs: number): Promise<number> {
  const deadline = Date.now() + waitMs
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await conn.ns.get('meta/store').exec()
      return Number(res.header.revision)
    } catch (err) {
      const pause = Math.min(5000, 500 * 2 ** attempt)
      if (Date.now() + pause > deadline) throw clusterError(err, 'starting (etcd did not answer within the start-up wait)')
      log.warn({ err, attempt: attempt + 1, retryInMs: pause }, 'etcd not reachable; retrying')
      await delay(pause)
    }
  }
}

export async function openClusterBackend (opts: ClusterBackendOptions): Promise<ClusterBackend> {
  const { cluster, logger } = opts
  const node = cluster.nodeName
  const log = logger.child({ room: 'cluster', node })
  const conn = connectEtcd(cluster.etcd)
  const closers: Array<() => Promise<void> | void> = [() => { conn.close() }]
  const closeAll = async (): Promise<void> => {
    for (const c of closers.splice(0).reverse()) {
      try { await c() } catch (err) { log.warn({ err }, 'closing a cluster part failed') }
    }
  }
  try {
    await reachable(conn, log, opts.startWaitMs ?? START_WAIT_MS)
    const members = memberAskers(cluster.etcd)
    closers.push(() => { members.close() })
    const membership = await Membership.join({ client: conn.client, ns: conn.ns, node, ttlSeconds: cluster.leaseTtlSeconds, stateDir: opts.stateDir, version: opts.version, logger: log, members: members.askers })
    // The lease is left to expire by itself: a restart within the TTL re-attaches and nothing is taken over.
    closers.push(async () => { await membership.close() })
    let ledger: EtcdRunLedger | null = null
    const ownership = await EtcdOwnership.open({ ns: conn.ns, membership, runs: () => ledger?.entries() ?? [], entry: id => ledger?.entry(id), hostDeadAfterMs: cluster.hostDeadAfterSeconds * 1000 })
    closers.push(async () => { await ownership.close() })
    ledger = await openEtcdRunLedger({ ns: conn.ns, node, owner: { claimOp: id => ownership.claimOp(id), key: id => `own/${id}`, node } })
    const openedLedger = ledger
    // What the revoke path kept while etcd was out of reach is DeferredRecords' (daemon.ts wraps this ledger): its
    // close() gives it a last chance before this one.
    closers.push(async () => { await openedLedger.close() })
    const store = await openEtcdSecretsStore({ ns: conn.ns, node, key: opts.key, logger: logger.child({ room: 'store' }) })
    closers.push(async () => { await store.close() })
    const watchRoots = await EtcdWatchRoots.open({ ns: conn.ns, membership, ttlSeconds: cluster.leaseTtlSeconds, logger: logger.child({ room: 'watch', node }) })
    closers.push(async () => { await watchRoots.close() })
    // Not read: a file no node updates any more would bring back, at each start, roots removed on the cluster since.
    const local = await localWatchRootCount(opts.stateDir)
    if (local > 0) {
      log.warn({ file: join(opts.stateDir, 'watches.json'), roots: local }, 'this node\'s watches.json is not read in cluster mode; with this daemon stopped, `nf-secretsd cluster import watches` copies its roots into the cluster (once; roots already shared are kept)')
    }

    // Nodes seen alive since this daemon started: a node that left stays listed, not alive, until the next restart.
    const seen = new Set<string>([node])
    for (const n of ownership.nodes()) seen.add(n.name)
    closers.push(ownership.onNodes(name => { seen.add(name) }))
    log.info({ leaseId: membership.leaseId, endpoints: cluster.etcd.endpoints, ledgerRevision: ledger.revision }, 'joined the cluster')

    return {
      node,
      store,
      ledger,
      ownership,
      membership,
      watchRoots,
      ownerOf: id => ownership.ownerOf(id),
      status: async () => {
        const counts = ownership.ownedCounts()
        const alive = new Set(ownership.nodes().map(n => n.name))
        for (const n of alive) seen.add(n)
        let healthy = true
        let revision = openedLedger.revision
        try {
          // A quorum read, bounded: a status must answer even when etcd does not.
          const res = await Promise.race([conn.ns.get('meta/store').exec(), delay(1500, null, { ref: false })])
          if (res === null) healthy = false
          else revision = Number(res.header.revision)
        } catch {
          healthy = false
        }
        return {
          node,
          nodes: [...seen].sort().map(name => ({ name, alive: alive.has(name), runs: counts.get(name) ?? 0 })),
          etcd: { endpoints: [...cluster.etcd.endpoints], healthy, revision }
        }
      },
      startAdopting: (onAdopted) => {
        const sweeps = startAdoptSweeps(ownership, onAdopted, log)
        closers.push(() => { sweeps.close() })
      },
      close: closeAll
    }
  } catch (err) {
    await closeAll()
    throw clusterError(err, 'joining the cluster')
  }
}
