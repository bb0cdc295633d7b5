// The members' word on a leader (CLUSTER.md "Engine outage"): while its keepalive goes unanswered, a node asks every
// configured member, each on a connection of its own, whether it knows a leader. Membership (the fencing rule) acts on
// the tally; this file asks and counts. A member that says "no leader" is trusted only with a majority of the cluster's
// members behind it (saying so too, or down): a member cut off from the others says "no leader" while the majority
// has one and expires this node's lease. Down means its endpoint refuses a TCP connection (its host answers and
// nothing listens there); a member that does not answer at all may be alive beyond a partition and counts for nothing.
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { connectEtcd, type EtcdConnectOptions } from '../store/etcd/etcd-client.js'

/** Asks one member, and only it, what it knows of the cluster's leader. */
export interface MemberAsker {
  endpoint: string
  /** Status of this member: its id and the leader it knows ('0': none) */
  status: () => Promise<{ memberId: string, leader: string }>
  /** its endpoint refuses a connection: its host answers and nothing listens there (a timeout proves nothing) */
  refuses: () => Promise<boolean>
}

/**
 * One client per configured endpoint, each asking only its own member (the shared client answers from whichever
 * member it picked). Same TLS and deadlines as the shared client.
 */
export function memberAskers (opts: EtcdConnectOptions): { askers: MemberAsker[], close: () => void } {
  const conns = opts.endpoints.map(endpoint => ({ endpoint, conn: connectEtcd({ ...opts, endpoints: [endpoint] }) }))
  return {
    askers: conns.map(({ endpoint, conn }) => ({
      endpoint,
      status: async () => {
        const st = await conn.client.maintenance.status()
        return { memberId: String(st.header.member_id), leader: String(st.leader) }
      },
      refuses: async () => await refused(endpoint)
    })),
    close: () => { for (const c of conns) c.conn.close() }
  }
}

/** how long a TCP connect to a member that did not answer Status may take to be refused */
const PROBE_MS = 1000

/** The endpoint's host refuses a TCP connection to its port: nothing listens there (a timeout proves nothing). */
async function refused (endpoint: string): Promise<boolean> {
  let url: URL
  try { url = new URL(endpoint) } catch { return false }
  const port = Number(url.port !== '' ? url.port : (url.protocol === 'https:' ? 443 : 80))
  const host = url.hostname.replace(/^\[|\]$/g, '')
  return await new Promise<boolean>((resolve) => {
    const sock = connect({ host, port })
    const done = (v: boolean): void => { clearTimeout(timer); sock.destroy(); resolve(v) }
    const timer = setTimeout(() => { done(false) }, PROBE_MS)
    sock.once('connect', () => { done(false) })
    sock.once('error', (err: NodeJS.ErrnoException) => { done(err.code === 'ECONNREFUSED') })
  })
}

/** What one member's answer (or silence) says about a leader that could expire our lease. */
type MemberWord = { kind: 'no-leader', memberId: string } | { kind: 'down' } | { kind: 'leader' } | { kind: 'unknown' }

/** One member's word: its Status, or when it does not answer, whether its endpoint refuses connections (down). */
async function askMember (m: MemberAsker): Promise<MemberWord> {
  try {
    const st = await m.status()
    return st.leader === '0' ? { kind: 'no-leader', memberId: st.memberId } : { kind: 'leader' }
  } catch {
    return await m.refuses().catch(() => false) ? { kind: 'down' } : { kind: 'unknown' }
  }
}

/** The count of the members' latest words. */
export interface Tally {
  /** members saying "no leader" */
  noLeader: number
  /** members down */
  down: number
  /** some member named a leader */
  leader: boolean
  /** how many members make a majority (Infinity while the cluster's size is unknown) */
  majority: number
  /** at least one "no leader" and, with the members down, a majority of the cluster */
  trusted: boolean
  /** the earliest time a counted word ("no leader" or down) was asked: the window counts from there */
  since: number
}

export interface LeaderWordOptions {
  members: MemberAsker[]
  /** the cluster's member count read at join, 0 when it could not be read */
  clusterSize: number
  /** read the member count again (any member answers, without quorum); throws when it cannot */
  memberCount: () => Promise<number>
  /** told after each answer is counted */
  onWord: () => void
  now: () => number
  /** how long a round waits for slow members before the next may start */
  roundMs: number
}

export class LeaderWord {
  readonly #opts: LeaderWordOptions
  // members whose Status answer is still awaited, and each member's latest word with when it was asked
  readonly #pending = new Set<MemberAsker>()
  readonly #words = new Map<MemberAsker, { word: MemberWord, asked: number }>()
  // how many members make a majority; Infinity while the cluster's size is unknown (see #learnSize)
  #majority: number

  constructor (opts: LeaderWordOptions) {
    this.#opts = opts
    this.#majority = this.#majorityOf(opts.clusterSize)
  }

  // Counted over the cluster's members, not only the configured endpoints: with fewer endpoints than members the
  // askers cannot reach a majority, and the node fences itself in an outage (the safe side). Unknown (the list
  // failed), no "no leader" is trusted until it is learnt: counted over the configured endpoints alone, one endpoint
  // made one member's word a majority, the two-owner case the majority rule is for.
  #majorityOf (size: number): number {
    return size > 0 ? Math.floor(Math.max(size, this.#opts.members.length) / 2) + 1 : Infinity
  }

  /** Forget every word (a keepalive was answered: the next outage starts afresh). */
  clear (): void { this.#words.clear() }

  /**
   * One round of questions to every member at once, each answer counted as it comes (then onWord). A member still
   * being asked from an earlier round is not asked again: its answer, when it comes, counts with the time it was
   * asked. The round ends when every member answered or after `roundMs`: the next does not wait for a silent member
   * (the client's deadline and tries cost it up to ~9 s), since rounds that far apart let the fencing window close
   * between two "no leader" answers, and a node in a real quorum loss fenced itself for the rest of it.
   */
  async round (): Promise<void> {
    if (this.#majority === Infinity) await this.#learnSize()
    const asked = this.#opts.now()
    const members = this.#opts.members.filter(m => !this.#pending.has(m))
    const all = Promise.all(members.map(async (m) => {
      this.#pending.add(m)
      try {
        this.#words.set(m, { word: await askMember(m), asked })
        this.#opts.onWord()
      } finally {
        this.#pending.delete(m)
      }
    }))
    await Promise.race([all, sleep(this.#opts.roundMs, undefined, { ref: false })])
  }

  /** Read the cluster's member list for the majority; untouched on failure. */
  async #learnSize (): Promise<void> {
    try {
      const size = await this.#opts.memberCount()
      if (size > 0) this.#majority = this.#majorityOf(size)
    } catch {}
  }

  /**
   * Count every member's latest word. `since` is the earliest time a counted word was asked, so an old word extends
   * the window little or not at all (a member down a while ago may be up now, with a leader).
   */
  tally (): Tally {
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
    const trusted = noLeader.size > 0 && noLeader.size + down >= this.#majority
    return { noLeader: noLeader.size, down, leader, majority: this.#majority, trusted, since }
  }
}
