// Joining the cluster (CLUSTER.md "Ownership", "Restart within the TTL"): a lease, the node's name nodes/<node> on it,
// the lasting joined/<node> record, and <state>/cluster-lease.json, so that a restart within the TTL re-attaches to
// the same lease (no takeover). Membership keeps the lease alive and holds the fencing rule; this file makes and
// remakes what it starts from. Plain lease RPCs, not the client's Lease helper: that one emits `lost` only after
// 2 x TTL and cannot re-attach.
import { readFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Etcd3, Namespace } from 'etcd3'
import { nfsError } from '../errors.js'
import { AtomicJsonFile } from '../store/atomic-file.js'
import { clusterError } from '../store/etcd/etcd-client.js'

export interface NodeInfo { host: string, pid: number, version: string, startedAt: string }

export const NODES = 'nodes/'
/** joined/<node>: a name that has joined this cluster, kept with no lease (see joinCluster) */
export const JOINED = 'joined/'

/** What joining needs (a part of MembershipOptions). */
export interface JoinOptions {
  client: Etcd3
  ns: Namespace
  node: string
  ttlSeconds: number
  stateDir: string
  version: string
  now?: () => number
  /** the host recorded in nodes/<node> (default: the host name); in-process tests give each node its own */
  host?: string
  logger?: { info: (obj: object, msg: string) => void }
}

export interface Joined {
  leaseId: string
  /** when the lease last had its full TTL by this node's clock: the fencing window counts from there */
  answeredAt: number
  /** the cluster's member count, 0 when the list could not be read */
  clusterSize: number
}

interface LeaseFile { node: string, leaseId: string }

const LEASE_FILE = 'cluster-lease.json'

/**
 * Re-attach to the lease of an earlier run of this node if it is still alive, else grant a new one; then claim
 * nodes/<node> on it. A name held by another live lease is refused (NFS_ERR_CONFIG: node names are unique).
 */
export async function joinCluster (opts: JoinOptions): Promise<Joined> {
  const now = opts.now ?? Date.now
  const lc = opts.client.leaseClient
  let leaseId: string | null = null
  let answeredAt = now()
  try {
    const saved = await readSaved(join(opts.stateDir, LEASE_FILE))
    if (saved !== null && saved.node === opts.node) {
      // Renewed at once, not only looked at: a lease re-attached with a second or two left would otherwise run out
      // while the daemon opens its replicas and reconciles, before its first regular keepalive (TTL/3 later), and
      // the others would adopt every run of a node that only restarted.
      answeredAt = now()
      if (await keepAliveOnce(opts.client, saved.leaseId) > 0) leaseId = saved.leaseId
    }
    if (leaseId === null) {
      answeredAt = now()
      leaseId = String((await lc.leaseGrant({ TTL: opts.ttlSeconds, ID: 0 })).ID)
    }
    const info: NodeInfo = { host: opts.host ?? hostname(), pid: process.pid, version: opts.version, startedAt: new Date(now()).toISOString() }
    const key = NODES + opts.node
    // A lease that has just expired still holds its keys until the leader revokes it (a moment later): a restart in
    // that window read its own old lease as dead and found the name taken (exit 78, the cluster chaos part). So the
    // name is refused only while its holder's lease is alive; a dead holder's is waited for, at most one TTL.
    const deadline = Date.now() + opts.ttlSeconds * 1000
    for (;;) {
      const res = await opts.ns.if(key, 'Create', '==', 0).then(opts.ns.put(key).value(JSON.stringify(info)).lease(leaseId))
        .else(opts.ns.get(key)).commit()
      if (res.succeeded) break
      // Taken: by ourselves before a restart (same lease: take it back), or by another daemon.
      const held = await opts.ns.if(key, 'Lease', '==', leaseId).then(opts.ns.put(key).value(JSON.stringify(info)).lease(leaseId)).commit()
      if (held.succeeded) break
      const holder = res.responses[0]?.response_range?.kvs[0]?.lease
      const alive = holder === undefined || Number((await lc.leaseTimeToLive({ ID: holder })).TTL) > 0
      if (alive || Date.now() >= deadline) throw nfsError('NFS_ERR_CONFIG', ['cluster.nodeName', `node name ${JSON.stringify(opts.node)} is held by another live daemon; node names must be unique`])
      await sleep(200)
    }
    // The lasting record that this name is a node of this cluster: only such a name is ever judged gone for good
    // (ownership.ts nodeGone, the AWS sweep of a dead node's leftovers). Without it, any node-tagged secret of the
    // account's prefix (a single-node daemon's, another cluster's) looked like a gone node's and was deleted.
    await opts.ns.put(JOINED + opts.node).value(JSON.stringify({ host: info.host })).exec()
  } catch (err) {
    throw clusterError(err, 'joining the cluster')
  }
  await saveLease(opts, leaseId)
  let clusterSize = 0
  try { clusterSize = await memberCount(opts.client) } catch {
    opts.logger?.info({}, 'the cluster\'s member list could not be read at join: no "no leader" answer is trusted until it is (the node fences itself in a quorum loss)')
  }
  return { leaseId, answeredAt, clusterSize }
}

/**
 * The lease was found gone while the daemon lives: grant a new one and take the node's name again on it. Null when
 * the name is held by another daemon now (the old lease's keys went with it, so a holder is not this node).
 */
export async function rejoin (opts: JoinOptions, startedAt: string): Promise<string | null> {
  const lc = opts.client.leaseClient
  const leaseId = String((await lc.leaseGrant({ TTL: opts.ttlSeconds, ID: 0 })).ID)
  const info: NodeInfo = { host: opts.host ?? hostname(), pid: process.pid, version: opts.version, startedAt }
  const key = NODES + opts.node
  const res = await opts.ns.if(key, 'Create', '==', 0).then(opts.ns.put(key).value(JSON.stringify(info)).lease(leaseId)).commit()
  if (!res.succeeded) {
    await lc.leaseRevoke({ ID: leaseId }).catch(() => {})
    return null
  }
  await saveLease(opts, leaseId)
  return leaseId
}

/** The cluster's member count (any member answers it, without quorum). */
export async function memberCount (client: Etcd3): Promise<number> {
  return (await client.cluster.memberList({ linearizable: false })).members.length
}

async function saveLease (opts: JoinOptions, leaseId: string): Promise<void> {
  await new AtomicJsonFile<LeaseFile>(join(opts.stateDir, LEASE_FILE), { mode: 0o600 }).write({ node: opts.node, leaseId })
}

/** Keep a lease alive once and wait for etcd's answer: the TTL it has now (0: the lease is gone). */
async function keepAliveOnce (client: Etcd3, leaseId: string, timeoutMs = 2000): Promise<number> {
  const stream = await client.leaseClient.leaseKeepAlive()
  try {
    return await new Promise<number>((resolve, reject) => {
      let done = false
      const settle = (fn: () => void): void => { if (!done) { done = true; clearTimeout(timer); fn() } }
      const timer = setTimeout(() => { settle(() => { reject(new Error('no keepalive answer within the deadline')) }) }, timeoutMs)
      stream.on('data', (res) => { settle(() => { resolve(Number(res.TTL)) }) })
      stream.on('error', (err: unknown) => { settle(() => { reject(err) }) })
      stream.write({ ID: leaseId })
    })
  } finally {
    try { stream.end() } catch {}
  }
}

async function readSaved (path: string): Promise<LeaseFile | null> {
  try {
    const v = JSON.parse(await readFile(path, 'utf8')) as Partial<LeaseFile>
    return typeof v.node === 'string' && typeof v.leaseId === 'string' ? { node: v.node, leaseId: v.leaseId } : null
  } catch {
    return null
  }
}
