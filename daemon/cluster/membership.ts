// This node's membership of the cluster (CLUSTER.md "Ownership", "Restart within the TTL"): a lease kept alive every
// TTL/3, the key nodes/<node> on it, and the self-fencing rule. The node may act as an owner only while
// now - (last keepalive answered) <= TTL - 2 s: past that its lease may already have expired in etcd and another
// node may be adopting its runs, so it starts nothing as owner until a keepalive is answered again. The lease id is
// kept in <state>/cluster-lease.json so that a restart within the TTL re-attaches to it (no takeover).
// Plain lease RPCs, not the client's Lease helper: that one emits `lost` only after 2 x TTL and cannot re-attach.
import { readFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { join } from 'node:path'
import type { Etcd3, Namespace } from 'etcd3'
import { nfsError } from '../errors.js'
import { AtomicJsonFile } from '../store/atomic-file.js'
import { clusterError, type MemberAsker } from '../store/etcd/etcd-client.js'

export type { MemberAsker }

export interface NodeInfo { host: string, pid: number, version: string, startedAt: string }

export interface MembershipOptions {
  client: Etcd3
  ns: Namespace
  node: string
  ttlSeconds: number
  stateDir: string
  version: string
  now?: () => number
  /** the host recorded in nodes/<node> (default: the host name); in-process tests give each node its own */
  host?: string
  /** told when the node enters or leaves the quorum-loss mode of the fencing rule, and when it takes a new lease */
  logger?: { info: (obj: object, msg: string) => void }
  /**
   * One asker per configured member (memberAskers() in etcd-client.ts): the quorum-loss rule needs the word of a
   * majority. Without them (tests of other parts) no "no leader" answer is ever trusted: the keepalive rule alone.
   */
  members?: MemberAsker[]
}

/** What one member's answer (or silence) says about a leader that could expire our lease. */
type MemberWord = { kind: 'no-leader', memberId: string } | { kind: 'down' } | { kind: 'leader' } | { kind: 'unknown' }

interface LeaseFile { node: string, leaseId: string }

const NODES = 'nodes/'
/** joined/<node>: a name that has joined this cluster, kept with no lease (see join) */
export const JOINED = 'joined/'
/** how often a node whose keepalive is unanswered asks the members whether the cluster has a leader */
const ASK_EVERY_MS = 500

export class Membership {
  readonly node: string
  readonly #opts: MembershipOptions
  readonly #now: () => number
  #lastAnswered: number
  #timer: NodeJS.Timeout | null = null
  #stream: Awaited<ReturnType<Etcd3['leaseClient']['leaseKeepAlive']>> | null = null
  #leaseId: string
  readonly #startedAt: string
  /** the lease was found gone (a keepalive answered TTL 0): fenced until #regain() holds a new one */
  #expired = false
  #regaining = false
  #closed = false
  /**
   * Until when this node may act as an owner (the self-fencing rule): TTL - 2 s past the last answered keepalive, or
   * past the last time a member said the cluster has no leader, if it said so while the node was still unfenced.
   */
  #ownerUntil: number
  /** when a member last said it knows no leader (null: not since the last answered keepalive) */
  #leaderlessAt: number | null = null
  // members whose Status answer is still awaited, and each member's latest word with when it was asked (#checkLeader)
  readonly #pending = new Set<MemberAsker>()
  readonly #words = new Map<MemberAsker, { word: MemberWord, asked: number }>()
  // the "not a majority" line was logged in this episode
  #doubted = false
  /** keepalives answered so far: a beat is unanswered while this has not moved (the clock may be a test's) */
  #answers = 0
  /** the loop asking members whether there is a leader runs (while a keepalive is unanswered) */
  #asking = false
  /** how many members must say "no leader" (or be down) for the quorum-loss rule: a majority of the cluster's */
  // how many members make a majority; Infinity while the cluster's size is unknown (see #learnSize)
  #majority: number

  // TTL/3 (CLUSTER.md), but at least two beats within the fencing window (TTL - 2 s): with a short TTL one beat a
  // window left the node fenced between the window's end and the beat's answer (ownership tests flaked under load).
  // And at least one a second: an unanswered beat is how a quorum loss is noticed, and the first "no leader" answer
  // must come within the window of the last answered beat. At TTL/3 (3.3 s for TTL 10) the window could end 4.7 s
  // after the loss while the question was asked only at 4.3 s (cluster test 8 under load: the owner fenced itself).
  get #every (): number {
    const ttl = this.#opts.ttlSeconds
    return Math.max(200, Math.floor(Math.min(ttl / 3, (ttl - 2) / 2, 1) * 1000))
  }

  private constructor (opts: MembershipOptions, leaseId: string, answeredAt: number, clusterSize: number) {
    this.#opts = opts
    this.#majority = clusterSize > 0 ? Math.floor(Math.max(clusterSize, opts.members?.length ?? 0) / 2) + 1 : Infinity
    this.node = opts.node
    this.#leaseId = leaseId
    this.#now = opts.now ?? Date.now
    this.#lastAnswered = answeredAt
    this.#ownerUntil = answeredAt + this.#window
    this.#startedAt = new Date(answeredAt).toISOString()
  }

  /** the lease this node's keys live on now (a new one after #regain()) */
  get leaseId (): string { return this.#leaseId }

  /** TTL - 2 s: how long an answer that the lease is alive (or frozen) lets this node act as an owner */
  get #window (): number {
    return (this.#opts.ttlSeconds - 2) * 1000
  }

  /**
   * Join: re-attach to the lease of an earlier run of this node if it is still alive, else grant a new one; then
   * claim nodes/<node> on it. A name held by another live lease is refused (NFS_ERR_CONFIG: node names are unique).
   */
  static async join (opts: MembershipOptions): Promise<Membership> {
    const now = opts.now ?? Date.now
    const file = new AtomicJsonFile<LeaseFile>(join(opts.stateDir, 'cluster-lease.json'), { mode: 0o600 })
    const lc = opts.client.leaseClient
    let leaseId: string | null = null
    // When the lease last had its full TTL by this node's clock: the fencing window counts from there.
    let answeredAt = now()
    try {
      const saved = await readSaved(join(opts.stateDir, 'cluster-lease.json'))
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
    await file.write({ node: opts.node, leaseId })
    // The majority is counted over the cluster's members, not only the configured endpoints: with fewer endpoints
    // than members the askers cannot reach a majority, and the node fences itself in an outage (the safe side).
    // Unknown (the list failed), no "no leader" is trusted until it is learnt: counted over the configured endpoints
    // alone, one endpoint made one member's word a majority, the two-owner case the majority rule is for.
    let size = 0
    try { size = (await opts.client.cluster.memberList({ linearizable: false })).members.length } catch {
      opts.logger?.info({}, 'the cluster\'s member list could not be read at join: no "no leader" answer is trusted until it is (the node fences itself in a quorum loss)')
    }
    const m = new Membership(opts, leaseId, answeredAt, size)
    // The first keepalive now: the name's claim may have waited for a dead holder, up to a TTL of the new lease's.
    m.#schedule(0)
    return m
  }

  /**
   * May this node act as an owner now (self-fencing, CLUSTER.md)? Yes within TTL - 2 s of an answered keepalive; and
   * within TTL - 2 s of the word of a majority of the members that the cluster has no leader (quorum lost; a stopped
   * member counts with them, see #checkLeader), when that word came while the node was still unfenced. etcd freezes every lease without a leader, and a new leader renews each by a full TTL
   * when it takes over, so no node can expire ours or adopt our runs meanwhile, and an owner must go on revoking its
   * runs as they end (CLUSTER.md "Engine outage"). Each such word while unfenced extends the window again, so a
   * quorum loss of any length keeps the owner an owner; a failed question changes nothing (it used to fence at once).
   * A node that cannot reach a majority learns nothing of the kind and fences itself (a partition: the others may
   * adopt), even when the one member it reaches says it has no leader. A keepalive answered with TTL 0 (the lease is gone) fences it until it holds a lease again.
   */
  get unfenced (): boolean {
    return !this.#expired && this.#now() <= this.#ownerUntil
  }

  /** etcd answered, at the last question, that it has no leader, and no keepalive was answered since (for status and tests) */
  get quorumLost (): boolean {
    return this.#leaderlessAt !== null
  }

  /** ms since etcd last answered a keepalive, for status */
  get sinceKeepalive (): number {
    return this.#now() - this.#lastAnswered
  }

  #schedule (delayMs = this.#every): void {
    if (this.#closed) return
    this.#timer = setTimeout(() => { void this.#beat().finally(() => { this.#schedule() }) }, delayMs)
    this.#timer.unref()
  }

  async #beat (): Promise<void> {
    const answers = this.#answers
    try {
      if (this.#stream === null) {
        const stream = await this.#opts.client.leaseClient.leaseKeepAlive()
        stream.on('data', (res) => {
          if (Number(res.TTL) > 0) {
            this.#answers++
            this.#lastAnswered = this.#now()
            this.#ownerUntil = Math.max(this.#ownerUntil, this.#lastAnswered + this.#window)
            if (this.#leaderlessAt !== null) this.#opts.logger?.info({ leaseId: this.#leaseId }, 'etcd answers keepalives again (quorum back)')
            this.#leaderlessAt = null
            this.#words.clear()
            this.#doubted = false
          } else {
            this.#expired = true
            void this.#regain()
          }
        })
        const drop = (): void => { if (this.#stream === stream) this.#stream = null }
        stream.on('error', drop)
        stream.on('end', drop)
        this.#stream = stream
      }
      if (this.#expired) void this.#regain()
      else this.#stream.write({ ID: this.#leaseId })
    } catch {
      // Unreachable: the fencing rule above takes over; the next beat tries a new stream.
      this.#stream = null
    }
    // A keepalive is answered within milliseconds: one still unanswered a moment later starts asking a member whether
    // the cluster has a leader (Status is answered by the member itself, without quorum), again every ASK_EVERY_MS
    // until a keepalive is answered. "None" means a quorum loss, not a partition of this node. Asked often, and from
    // well before the fencing window ends: a member knows it lost its leader only an election timeout or two after
    // the loss, and under load one question a beat came too late (cluster test 8: the owner fenced itself first).
    const check = setTimeout(() => { if (this.#answers === answers && !this.#closed) void this.#askForLeader(answers) }, Math.min(500, this.#every / 2))
    check.unref()
  }

  /**
   * The lease is gone while this daemon lives (a stall or a cut longer than the TTL, or a restart that re-attached to
   * a lease about to expire): etcd deleted its keys, so the others adopt its runs. Without a new lease the node could
   * never own anything again, and every arm on it failed (the lease of its own/ key not found) until a restart. So it
   * takes a new lease and its node name again, and starts as a new owner (it owns none of its old runs: their keys
   * went with the old lease, and the others adopt them).
   */
  async #regain (): Promise<void> {
    if (this.#regaining || this.#closed) return
    this.#regaining = true
    try {
      const lc = this.#opts.client.leaseClient
      // The new lease's TTL runs from its grant: the window counts from before the asking.
      const asked = this.#now()
      const leaseId = String((await lc.leaseGrant({ TTL: this.#opts.ttlSeconds, ID: 0 })).ID)
      const info: NodeInfo = { host: this.#opts.host ?? hostname(), pid: process.pid, version: this.#opts.version, startedAt: this.#startedAt }
      const key = NODES + this.node
      // The old lease's keys are gone with it, nodes/<node> included; a name held now is another daemon's.
      const res = await this.#opts.ns.if(key, 'Create', '==', 0).then(this.#opts.ns.put(key).value(JSON.stringify(info)).lease(leaseId)).commit()
      if (!res.succeeded) {
        await lc.leaseRevoke({ ID: leaseId }).catch(() => {})
        return
      }
      await new AtomicJsonFile<LeaseFile>(join(this.#opts.stateDir, 'cluster-lease.json'), { mode: 0o600 }).write({ node: this.node, leaseId })
      if (this.#closed) return
      this.#leaseId = leaseId
      this.#lastAnswered = asked
      this.#ownerUntil = asked + this.#window
      this.#leaderlessAt = null
      this.#expired = false
      this.#opts.logger?.info({ leaseId }, 'the node\'s lease was gone; it holds a new one')
    } catch {
      // etcd out of reach or the state dir refused: the next beat tries again.
    } finally {
      this.#regaining = false
    }
  }

  async #askForLeader (answers: number): Promise<void> {
    if (this.#asking) return
    this.#asking = true
    try {
      while (!this.#closed && this.#answers === answers) {
        await this.#checkLeader()
        await sleep(ASK_EVERY_MS, undefined, { ref: false })
      }
    } finally {
      this.#asking = false
    }
  }

  /**
   * One round of questions to every member at once. A majority of the cluster's members must say they know no leader,
   * or be down, before the window is extended: a node that reaches only a member cut off from the others hears
   * "no leader" from it while the majority has a leader and expires this node's lease (then another node adopts its
   * runs: two owners). A member is down when its endpoint refuses a TCP connection (its host answers, nothing
   * listens): a stopped member is in no leader's majority. A member that does not answer at all may be alive beyond a
   * partition, with a leader: it counts for nothing, and without a majority the node fences itself as in a partition.
   * The window counts from before the round: a leader elected after the question renews every lease by a full TTL.
   */
  async #checkLeader (): Promise<void> {
    if (this.#majority === Infinity) await this.#learnSize()
    const asked = this.#now()
    // A member still being asked from an earlier round is not asked again: its answer, when it comes, counts with
    // the time it was asked.
    const members = (this.#opts.members ?? []).filter(m => !this.#pending.has(m))
    const round = Promise.all(members.map(async (m) => {
      this.#pending.add(m)
      try {
        this.#words.set(m, { word: await askMember(m), asked })
        this.#judge()
      } finally {
        this.#pending.delete(m)
      }
    }))
    // Each answer is judged as it comes, and the next round does not wait for a silent member (the client's deadline
    // and tries cost it up to ~9 s): rounds that far apart let the window (TTL - 2 s) close between two "no leader"
    // answers, and a node in a real quorum loss fenced itself for the rest of it.
    await Promise.race([round, sleep(ASK_EVERY_MS, undefined, { ref: false })])
  }

  /** Read the cluster's member list (any member answers it, without quorum) for the majority; untouched on failure. */
  async #learnSize (): Promise<void> {
    try {
      const size = (await this.#opts.client.cluster.memberList({ linearizable: false })).members.length
      if (size > 0) this.#majority = Math.floor(Math.max(size, this.#opts.members?.length ?? 0) / 2) + 1
    } catch {}
  }

  /**
   * Judge on every member's latest word. The window is extended from the earliest time a counted word was asked, so
   * an old word extends it little or not at all (a member down a while ago may be up now, with a leader).
   */
  #judge (): void {
    const noLeader = new Set<string>()
    let down = 0
    let leader = false
    let since = Infinity
    for (const { word, asked } of this.#words.values()) {
      if (word.kind === 'no-leader') noLeader.add(word.memberId)
      else if (word.kind === 'down') down++
      else if (word.kind === 'leader') leader = true
      if (word.kind === 'no-leader' || word.kind === 'down') since = Math.min(since, asked)
    }
    if (noLeader.size > 0 && noLeader.size + down >= this.#majority) {
      this.#doubted = false
      this.#leaderless(since, noLeader.size, down)
      return
    }
    if (noLeader.size > 0 && this.#leaderlessAt === null && !this.#doubted) {
      this.#doubted = true
      this.#opts.logger?.info({ noLeader: noLeader.size, down, majority: this.#majority },
        'a member says etcd has no leader, but not a majority of the members: not trusted (this node may be cut off from a majority that has one)')
    }
    if (leader || noLeader.size > 0) this.#leaderlessAt = null
  }

  #leaderless (asked: number, noLeader: number, down: number): void {
    const first = this.#leaderlessAt === null
    this.#leaderlessAt = asked
    // Only while still unfenced: a lease that may have expired before the quorum loss is not brought back to life.
    if (this.#expired || this.#now() > this.#ownerUntil) {
      if (first) this.#opts.logger?.info({ sinceKeepaliveMs: this.#now() - this.#lastAnswered, noLeader, down }, 'etcd says it has no leader, but this node is fenced already: it stays fenced')
      return
    }
    this.#ownerUntil = Math.max(this.#ownerUntil, asked + this.#window)
    if (first) this.#opts.logger?.info({ sinceKeepaliveMs: this.#now() - this.#lastAnswered, noLeader, down }, 'a majority of the etcd members has no leader (quorum lost): leases are frozen, this node stays the owner of its runs')
  }

  /**
   * Stop keeping the lease alive but leave it to expire by itself, so that a restart within the TTL re-attaches
   * (systemctl restart causes no takeover). `revoke` ends it at once: the node leaves and its runs are adopted.
   */
  async close (opts: { revoke?: boolean } = {}): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#timer !== null) clearTimeout(this.#timer)
    try { this.#stream?.end() } catch {}
    this.#stream = null
    if (opts.revoke === true) await this.#opts.client.leaseClient.leaseRevoke({ ID: this.leaseId }).catch(() => {})
  }
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

/** One member's word: its Status, or when it does not answer, whether its endpoint refuses connections (down). */
async function askMember (m: MemberAsker): Promise<MemberWord> {
  try {
    const st = await m.status()
    return st.leader === '0' ? { kind: 'no-leader', memberId: st.memberId } : { kind: 'leader' }
  } catch {
    return await m.refuses().catch(() => false) ? { kind: 'down' } : { kind: 'unknown' }
  }
}
