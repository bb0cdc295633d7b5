// Membership when etcd misbehaves, on a real 3-member etcd: the self-fencing rule through a quorum loss (CLUSTER.md
// "Ownership", "Engine outage"), and a lease that is gone while the daemon lives. The node's clock is the test's
// (frozen, moved by hand), so which window is open is decided by the rule, not by how fast a loaded machine runs;
// the test waits only for etcd's answers, which it counts by following the client's real Status calls.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Membership } from '../../daemon/cluster/membership.js'
import { connectEtcd } from '../../daemon/store/etcd/etcd-client.js'
import { memberAskers, type MemberAsker } from '../../daemon/cluster/leader-word.js'
import { startEtcdCluster } from '../helpers/etcd-cluster.js'
import { startTcpRelay } from '../helpers/tcp-relay.js'
import { requireEtcd } from '../helpers/requires.js'
import { waitFor } from '../helpers/wait.js'

requireEtcd(t)

const TTL = 6
/** the fencing window: TTL - 2 s */
const WINDOW = (TTL - 2) * 1000

/**
 * Every member's word the membership got, with the node's clock when it asked: the leader it named ('0': none), or
 * when it did not answer, 'down' (its endpoint refused a connection) or 'silent'. Recorded before the membership
 * counts it, so once a round's words are all here the membership has judged it.
 */
type Word = string
function followWords (askers: MemberAsker[], clock: () => number): Array<{ at: number, member: number, word: Word }> {
  const seen: Array<{ at: number, member: number, word: Word }> = []
  askers.forEach((a, member) => {
    const status = a.status
    const refuses = a.refuses
    let at = 0
    a.status = async () => {
      at = clock()
      const res = await status()
      seen.push({ at, member, word: res.leader })
      return res
    }
    a.refuses = async () => {
      const r = await refuses()
      seen.push({ at, member, word: r ? 'down' : 'silent' })
      return r
    }
  })
  return seen
}

t.test('quorum lost: the owner stays an owner while etcd says it has no leader, and only then', async t => {
  const etcd = await startEtcdCluster(t)
  if (etcd === null) return
  const conn = connectEtcd({ endpoints: etcd.endpoints, prefix: `/nfs-test/${randomBytes(6).toString('hex')}/` })
  t.teardown(() => { conn.close() })
  const members = memberAskers({ endpoints: etcd.endpoints, prefix: '/' })
  t.teardown(() => { members.close() })
  let clock = Date.now()
  const now = (): number => clock
  const seen = followWords(members.askers, now)
  const m = await Membership.join({ client: conn.client, ns: conn.ns, node: 'n1', ttlSeconds: TTL, stateDir: mkdtempSync(join(tmpdir(), 'nfs-fence-')), version: '0.0.0-test', now, members: members.askers })
  t.teardown(async () => { await m.close() })
  const t0 = clock
  /** wait until a round asked at the clock as it is now (or later) is complete: every member's word, as given */
  const answered = async (...words: Word[]): Promise<void> => {
    const from = clock
    await waitFor(`the words ${words.join(', ')} asked at ${from - t0} ms`, () => words.every((w, i) => seen.some(s => s.at >= from && s.member === i && s.word === w)), 30_000, 50)
  }

  // A node already past its keepalive window when it hears "no leader" stays fenced: its lease may have expired
  // before the quorum was lost, and another node may be adopting its runs.
  // (A leader without quorum still answers keepalives until it steps down: the clock moves once a member has said
  // there is no leader, so that no keepalive answered after the move reopens the window.)
  await etcd.kill(1)
  await etcd.kill(2)
  await answered('0', 'down', 'down')
  clock = t0 + 2 * WINDOW
  await answered('0', 'down', 'down')
  t.ok(m.quorumLost, 'a majority says there is no leader (one member, two down)')
  t.notOk(m.unfenced, 'a no-leader answer after the window closed changes nothing')
  await etcd.restart(1)
  await etcd.restart(2)
  await etcd.healthy()
  await waitFor('an answered keepalive', () => m.unfenced, 60_000, 100)
  t.notOk(m.quorumLost, 'quorum back: the keepalive is answered again (the lease was frozen, not expired)')

  // Quorum lost while the node is an owner: etcd says there is no leader, again late in the keepalive window, and the
  // lease cannot expire (frozen), so the window runs on from that answer.
  const t1 = clock
  await etcd.kill(1)
  await etcd.kill(2)
  await answered('0', 'down', 'down')
  clock = t1 + WINDOW - 500
  await answered('0', 'down', 'down')
  clock = t1 + WINDOW + 1500
  t.ok(m.unfenced, 'past the keepalive window: still an owner, on etcd\'s word that it has no leader')

  // Now no member answers at all (as for a node cut off from every member): nothing is learned either way, and a
  // failed question does not fence the owner before its window ends.
  await etcd.kill(0)
  await answered('down', 'down', 'down')
  t.ok(m.unfenced, 'a failed Status changes nothing within the window of the last no-leader answer')
  clock = t1 + 2 * WINDOW
  t.notOk(m.unfenced, 'past the window of the last answer: fenced')
})

t.test('cut off from all but one minority member: its "no leader" is not trusted, the node fences itself before the majority expires its lease', async t => {
  const etcd = await startEtcdCluster(t, 3, { peerRelays: true })
  if (etcd === null) return
  // The node reaches each member through a relay of the test's, so that it can be cut from some and not others.
  const relays = await Promise.all(etcd.endpoints.map(async e => await startTcpRelay(t, { host: '127.0.0.1', port: Number(new URL(e).port) })))
  const via = relays.map(r => `http://127.0.0.1:${r.port}`)
  const prefix = `/nfs-test/${randomBytes(6).toString('hex')}/`
  const conn = connectEtcd({ endpoints: via, prefix })
  t.teardown(() => { conn.close() })
  const members = memberAskers({ endpoints: via, prefix })
  t.teardown(() => { members.close() })
  // The majority's view, straight to its members (not through the node's relays).
  let clock = Date.now()
  const now = (): number => clock
  const seen = followWords(members.askers, now)
  const m = await Membership.join({ client: conn.client, ns: conn.ns, node: 'n1', ttlSeconds: TTL, stateDir: mkdtempSync(join(tmpdir(), 'nfs-minority-')), version: '0.0.0-test', now, members: members.askers })
  t.teardown(async () => { await m.close() })
  const t0 = clock
  await waitFor('an owner', () => m.unfenced, 30_000, 50)

  // A member that does not lead is cut off from its peers; the node reaches only that member. The other two keep
  // (or elect) a leader, which goes on counting down the node's lease.
  const leader = await etcd.leader()
  const lone = [0, 1, 2].find(i => i !== leader)!
  const majority = [0, 1, 2].filter(i => i !== lone)
  const others = connectEtcd({ endpoints: majority.map(i => etcd.endpoints[i]!), prefix })
  t.teardown(() => { others.close() })
  await etcd.isolate(lone)
  for (const i of majority) relays[i]!.cut()
  const words = (): Word[] => [0, 1, 2].map(i => i === lone ? '0' : 'silent')
  const answered = async (): Promise<void> => {
    const from = clock
    const want = words()
    await waitFor(`the words ${want.join(', ')} asked at ${from - t0} ms`, () => want.every((w, i) => seen.some(s => s.at >= from && s.member === i && s.word === w)), 60_000, 50)
  }
  // The lone member says it knows no leader (a follower cut off from its leader drops it at its election timeout).
  await answered()
  t.notOk(m.quorumLost, 'one member\'s "no leader" is not a quorum loss')
  // Late in the window, again: with one member's word trusted, this answer would keep the node an owner past it.
  clock = t0 + WINDOW - 500
  await answered()
  clock = t0 + WINDOW + 1500
  t.notOk(m.unfenced, 'past the keepalive window: fenced, though the member it reaches says there is no leader')

  // What the fence is for: the majority has a leader, and it expires the node's lease (then another node adopts).
  await waitFor('the majority to expire the node\'s lease', async () => (await others.ns.get('nodes/n1').exec()).kvs.length === 0, 60_000, 200)
  const status = await others.client.maintenance.status()
  t.not(String(status.leader), '0', 'the majority has a leader')
  t.notOk(m.unfenced, 'the node is fenced while another node could adopt its runs')
  etcd.rejoin(lone)
  for (const i of majority) relays[i]!.heal()
})

t.test('a member that never answers does not hold up the rounds: the others are asked again meanwhile', async t => {
  // Found in review: one round waited for every member, and a silent one costs the client's deadline and tries (up to
  // ~9 s), so with a TTL of 5 the window (3 s) closed between two "no leader" answers and the node fenced itself for
  // the rest of a real quorum loss. Judged by the order of the calls, not by time: while one Status call to the
  // silent member is out, the member that answers must be asked more than once.
  const etcd = await startEtcdCluster(t, 3, { peerRelays: true })
  if (etcd === null) return
  // Member 2 is reached through a relay the test cuts; 0 and 1 directly, so that 1's port refuses once it stops.
  const relay = await startTcpRelay(t, { host: '127.0.0.1', port: Number(new URL(etcd.endpoints[2]!).port) })
  const via = [etcd.endpoints[0]!, etcd.endpoints[1]!, `http://127.0.0.1:${relay.port}`]
  const conn = connectEtcd({ endpoints: via, prefix: `/nfs-test/${randomBytes(6).toString('hex')}/` })
  t.teardown(() => { conn.close() })
  const members = memberAskers({ endpoints: via, prefix: '/' })
  t.teardown(() => { members.close() })
  const calls: string[] = []
  members.askers.forEach((a, i) => {
    const status = a.status
    a.status = async () => {
      calls.push(`ask ${i}`)
      try {
        const res = await status()
        calls.push(`answer ${i}`)
        return res
      } catch (err) {
        calls.push(`fail ${i}`)
        throw err
      }
    }
  })
  const m = await Membership.join({ client: conn.client, ns: conn.ns, node: 'n1', ttlSeconds: 5, stateDir: mkdtempSync(join(tmpdir(), 'nfs-silent-')), version: '0.0.0-test', members: members.askers })
  t.teardown(async () => { await m.close() })
  await waitFor('an owner', () => m.unfenced, 30_000, 50)
  // Quorum lost: member 1 stopped (its port refuses); member 2 cut off from its peers and, behind the node's relay,
  // silent (connections taken, never answered); member 0 alone says it has no leader.
  relay.cut()
  await etcd.isolate(2)
  await etcd.kill(1)
  await waitFor('one whole Status call to the silent member', () => calls.includes('fail 2'), 60_000, 50)
  const out = calls.slice(calls.indexOf('ask 2'), calls.indexOf('fail 2'))
  const asked0 = out.filter(c => c === 'ask 0').length
  t.ok(asked0 >= 2, `member 0 asked ${asked0} times while one call to the silent member was out`)
  t.ok(m.quorumLost, 'the quorum loss is seen (one "no leader", one down)')
  etcd.rejoin(2)
  relay.heal()
  await etcd.restart(1)
})

t.test('a cluster size not known at join trusts no "no leader" until it is', async t => {
  // Review finding: a failed member list left the majority counted over the configured endpoints alone; with one
  // endpoint, the one member's "no leader" was a majority again (a member cut off from its peers says just that).
  const etcd = await startEtcdCluster(t)
  if (etcd === null) return
  const conn = connectEtcd({ endpoints: [etcd.endpoints[0]!], prefix: `/nfs-test/${randomBytes(6).toString('hex')}/` })
  t.teardown(() => { conn.close() })
  const members = memberAskers({ endpoints: [etcd.endpoints[0]!], prefix: '/' })
  t.teardown(() => { members.close() })
  let clock = Date.now()
  const now = (): number => clock
  const seen = followWords(members.askers, now)
  // The member list fails, always (as it may at a join during trouble); everything else is the real client.
  const cluster = new Proxy(conn.client.cluster, { get: (c, p, r) => p === 'memberList' ? async () => { throw new Error('member list refused') } : Reflect.get(c, p, r) as unknown })
  const client = new Proxy(conn.client, { get: (c, p, r) => p === 'cluster' ? cluster : Reflect.get(c, p, r) as unknown })
  const m = await Membership.join({ client, ns: conn.ns, node: 'n1', ttlSeconds: TTL, stateDir: mkdtempSync(join(tmpdir(), 'nfs-size-')), version: '0.0.0-test', now, members: members.askers })
  t.teardown(async () => { await m.close() })
  const t0 = clock
  await etcd.kill(1)
  await etcd.kill(2)
  const from = clock
  await waitFor('member 0 to say it has no leader', () => seen.some(s => s.at >= from && s.member === 0 && s.word === '0'), 30_000, 50)
  t.notOk(m.quorumLost, 'one member\'s word is not taken for a majority of a cluster of unknown size')
  clock = t0 + WINDOW + 1500
  t.notOk(m.unfenced, 'past the window: fenced')
  await etcd.restart(1)
  await etcd.restart(2)
})

t.test('a lease gone while the node lives is replaced: the node can own runs again', async t => {
  const etcd = await startEtcdCluster(t)
  if (etcd === null) return
  const conn = connectEtcd({ endpoints: etcd.endpoints, prefix: `/nfs-test/${randomBytes(6).toString('hex')}/` })
  t.teardown(() => { conn.close() })
  const m = await Membership.join({ client: conn.client, ns: conn.ns, node: 'n1', ttlSeconds: 5, stateDir: mkdtempSync(join(tmpdir(), 'nfs-regain-')), version: '0.0.0-test' })
  t.teardown(async () => { await m.close({ revoke: true }) })
  const old = m.leaseId
  // What a stall longer than the TTL does (or a restart that re-attached to a lease about to expire): etcd drops the
  // lease and every key on it. Revoked from outside here, so no timing decides it.
  await conn.client.leaseClient.leaseRevoke({ ID: old })
  await waitFor('a new lease', () => m.leaseId !== old, 30_000, 50)
  t.ok(m.unfenced, 'an owner again')
  const node = await conn.ns.get('nodes/n1').exec()
  t.equal(String(node.kvs[0]?.lease), m.leaseId, 'nodes/n1 is back, on the new lease')
  // An arm's claim (own/<id> on the node's lease) works again: before, it failed with 'requested lease not found'.
  const claim = await conn.ns.if('own/r1', 'Create', '==', 0).then(conn.ns.put('own/r1').value('n1').lease(m.leaseId)).commit()
  t.ok(claim.succeeded, 'a run can be claimed on it')
})
