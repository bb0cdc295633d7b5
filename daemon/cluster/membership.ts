// This node's membership of the cluster (CLUSTER.md "Ownership", "Restart within the TTL"): a lease kept alive every
// TTL/3 (joined and remade in join.ts), and the self-fencing rule. The node may act as an owner only while
// now - (last keepalive answered) <= TTL - 2 s: past that its lease may already have expired in etcd and another
// node may be adopting its runs, so it starts nothing as owner until a keepalive is answered again. In a quorum loss
// the members' word (leader-word.ts) keeps an owner an owner.
import { setTimeout as sleep } from 'node:timers/promises'
import type { Etcd3 } from 'etcd3'
import { joinCluster, memberCount, rejoin, type JoinOptions } from './join.js'
import { LeaderWord, type MemberAsker } from './leader-word.js'

export interface MembershipOptions extends JoinOptions {
  /** told when the node enters or leaves the quorum-loss mode of the fencing rule, and when it takes a new lease */
  logger?: { info: (obj: object, msg: string) => void }
  /**
   * One asker per configured member (memberAskers() in leader-word.ts): the quorum-loss rule needs the word of a
   * majority. Without them (tests of other parts) no "no leader" answer is ever trusted: the keepalive rule alone.
   */
  members?: MemberAsker[]
}

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
  /** the members' word on a leader, asked while a keepalive is unanswered */
  readonly #word: LeaderWord
  // the "not a majority" line was logged in this episode
  #doubted = false
  /** keepalives answered so far: a beat is unanswered while this has not moved (the clock may be a test's) */
  #answers = 0
  /** the loop asking members whether there is a leader runs (while a keepalive is unanswered) */
  #asking = false

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
    this.node = opts.node
    this.#leaseId = leaseId
    this.#now = opts.now ?? Date.now
    this.#word = new LeaderWord({
      members: opts.members ?? [],
      clusterSize,
      memberCount: async () => await memberCount(opts.client),
      onWord: () => { this.#judge() },
      now: this.#now,
      roundMs: ASK_EVERY_MS
    })
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

  /** Join (join.ts: the lease, re-attached or new, and the node's name on it), then keep the lease alive. */
  static async join (opts: MembershipOptions): Promise<Membership> {
    const joined = await joinCluster(opts)
    const m = new Membership(opts, joined.leaseId, joined.answeredAt, joined.clusterSize)
    // The first keepalive now: the name's claim may have waited for a dead holder, up to a TTL of the new lease's.
    m.#schedule(0)
    return m
  }

  /**
   * May this node act as an owner now (self-fencing, CLUSTER.md)? Yes within TTL - 2 s of an answered keepalive; and
   * within TTL - 2 s of the word of a majority of the members that the cluster has no leader (quorum lost; a stopped
   * member counts with them, see leader-word.ts), when that word came while the node was still unfenced. etcd
   * freezes every lease without a leader, and a new leader renews each by a full TTL when it takes over, so no node
   * can expire ours or adopt our runs meanwhile, and an owner must go on revoking its runs as they end (CLUSTER.md
   * "Engine outage"). Each such word while unfenced extends the window again, so a quorum loss of any length keeps
   * the owner an owner; a failed question changes nothing (it used to fence at once). A node that cannot reach a
   * majority learns nothing of the kind and fences itself (a partition: the others may adopt), even when the one
   * member it reaches says it has no leader. A keepalive answered with TTL 0 (the lease is gone) fences it until it
   * holds a lease again.
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
            this.#word.clear()
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
      // The new lease's TTL runs from its grant: the window counts from before the asking.
      const asked = this.#now()
      const leaseId = await rejoin(this.#opts, this.#startedAt)
      if (leaseId === null || this.#closed) return
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
        await this.#word.round()
        await sleep(ASK_EVERY_MS, undefined, { ref: false })
      }
    } finally {
      this.#asking = false
    }
  }

  /** Judge on every member's latest word, as each answer comes: trusted only with a majority of the cluster behind it. */
  #judge (): void {
    const { noLeader, down, leader, majority, trusted, since } = this.#word.tally()
    if (trusted) {
      this.#doubted = false
      this.#leaderless(since, noLeader, down)
      return
    }
    if (noLeader > 0 && this.#leaderlessAt === null && !this.#doubted) {
      this.#doubted = true
      this.#opts.logger?.info({ noLeader, down, majority },
        'a member says etcd has no leader, but not a majority of the members: not trusted (this node may be cut off from a majority that has one)')
    }
    if (leader || noLeader > 0) this.#leaderlessAt = null
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
