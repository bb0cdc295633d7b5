// liveRunsPerUser over a cluster, on a real 3-member etcd: two nodes arming for one user at the same instant. Each node
// does what RunManager.create does (a slot reserved on its own LiveRunQuota, then the intent's insert with the
// caller's limit); a node sees only its own pending arms, so without the ledger's count in the insert's transaction
// both nodes pass with their own slots and the user ends with up to twice the limit. Counted in etcd from a third
// connection, not from either node.
import t from 'tap'
import { isCoded } from '../../daemon/errors.js'
import { LiveRunQuota } from '../../daemon/runs/quota.js'
import { openEtcdRunLedger, type EtcdRunLedger } from '../../daemon/store/etcd/etcd-run-ledger.js'
import { isTerminal, type RunRecord } from '../../daemon/types.js'
import { startEtcdNamespace } from '../helpers/etcd-cluster.js'
import { loseAnswers, type LostAnswers } from '../helpers/lost-answer.js'
import { requireEtcd } from '../helpers/requires.js'
import { intentRecord } from './contract/run-ledger-contract.js'

requireEtcd(t)

const LIMIT = 3
const ARMS_PER_NODE = 2 * LIMIT
const ROUNDS = 3

t.test('two nodes racing arms of one user never leave more than liveRunsPerUser live runs', async t => {
  const etcd = await startEtcdNamespace(t)
  if (etcd === null) return
  const { connect } = etcd
  const node = async (name: string): Promise<{ ledger: EtcdRunLedger, quota: LiveRunQuota, hold: LostAnswers }> => {
    const conn = connect()
    const hold = loseAnswers(conn.client)
    const ledger = await openEtcdRunLedger({ ns: conn.ns, node: name })
    t.teardown(async () => { await ledger.close() })
    return { ledger, quota: new LiveRunQuota(LIMIT), hold }
  }
  const nodes = [await node('a'), await node('b')]
  const reader = connect()
  let next = 0

  for (let round = 0; round < ROUNDS; round++) {
    // A user of its own per round, so each round starts from zero live runs.
    const uid = 2000 + round
    const caller = { user: `u${uid}`, uid, isAdmin: false }
    const arm = async (n: { ledger: EtcdRunLedger, quota: LiveRunQuota }): Promise<'armed' | 'limit'> => {
      let release: () => void
      try {
        release = n.quota.reserve(caller, () => n.ledger.all())
      } catch (err) {
        if (isCoded(err, 'NFS_ERR_LIMIT')) return 'limit'
        throw err
      }
      try {
        await n.ledger.insert(intentRecord(next++, { user: caller.user, uid }), { liveLimit: LIMIT })
        return 'armed'
      } catch (err) {
        if (isCoded(err, 'NFS_ERR_LIMIT')) return 'limit'
        throw err
      } finally {
        release()
      }
    }
    const results = await Promise.all(nodes.flatMap(n => Array.from({ length: ARMS_PER_NODE }, async () => await arm(n))))
    const rows = (await reader.ns.getAll().prefix('runs/').strings())
    const live = Object.values(rows).map(v => JSON.parse(v) as RunRecord).filter(r => r.uid === uid && !isTerminal(r.state)).length
    t.equal(live, LIMIT, `round ${round}: ${LIMIT} live runs of the user in etcd, not more (armed on two nodes at once)`)
    t.equal(results.filter(r => r === 'armed').length, LIMIT, 'as many arms answered armed')
    t.equal(results.filter(r => r === 'limit').length, 2 * ARMS_PER_NODE - LIMIT, 'the others NFS_ERR_LIMIT')
  }

  // Ends free slots: a run ended on b lets a arm again, though a's mirror may not have the end yet.
  const uid = 2000
  const ledgerA = nodes[0]!.ledger
  const ledgerB = nodes[1]!.ledger
  await ledgerB.settle()
  const one = ledgerB.all().find(r => r.uid === uid)!
  await ledgerB.update(one.runId, one.version, r => ({ ...r, state: 'completed', endedAt: '2030-01-01T01:00:00.000Z' }))
  const again = await ledgerA.insert(intentRecord(next++, { user: `u${uid}`, uid }), { liveLimit: LIMIT })
  t.equal(again.version, 1, 'armed once a run of the user ended on another node')
  await t.rejects(ledgerB.insert(intentRecord(next++, { user: `u${uid}`, uid }), { liveLimit: LIMIT }), { code: 'NFS_ERR_LIMIT' }, 'and the limit holds again')
  // Admins are not limited (no liveLimit).
  t.equal((await ledgerB.insert(intentRecord(next++, { user: `u${uid}`, uid }))).version, 1, 'an insert with no limit is not counted against it')

  // An admin's arm counts against the user's next limited one, also when it commits between that arm's count and its
  // commit: a counts LIMIT - 1 live runs, and its transaction reaches etcd only after b's admin insert has committed.
  const other = 2100
  const liveIn = async (u: number): Promise<number> => Object.values(await reader.ns.getAll().prefix('runs/').strings())
    .map(v => JSON.parse(v) as RunRecord).filter(r => r.uid === u && !isTerminal(r.state)).length
  for (let i = 0; i < LIMIT - 1; i++) await ledgerA.insert(intentRecord(next++, { user: `u${other}`, uid: other }), { liveLimit: LIMIT })
  await ledgerA.settle()
  let adminArmed = false
  nodes[0]!.hold.holdNext(`uarms/${other}`, async () => {
    await ledgerB.insert(intentRecord(next++, { user: `u${other}`, uid: other }))
    adminArmed = true
  })
  await t.rejects(ledgerA.insert(intentRecord(next++, { user: `u${other}`, uid: other }), { liveLimit: LIMIT }), { code: 'NFS_ERR_LIMIT' },
    'a limited arm whose count missed an admin\'s arm committed meanwhile is refused')
  t.ok(adminArmed, 'the admin\'s arm went in between the count and the commit')
  t.equal(await liveIn(other), LIMIT, `${LIMIT} live runs of the user in etcd, not more`)

  // A limited arm that keeps losing the race (review 7): every try of its transaction reaches etcd just after another
  // node's arm of the same user moved the arm sequence. It must end in a retryable answer, not NFS_ERR_CONFLICT (409
  // tells the user to fix something in a request that conflicts with nothing).
  const busy = 2200
  let races = 0
  const race = (): void => {
    nodes[0]!.hold.holdNext(`uarms/${busy}`, async () => {
      races++
      await ledgerB.insert(intentRecord(next++, { user: `u${busy}`, uid: busy }))
      race()
    })
  }
  race()
  await t.rejects(ledgerA.insert(intentRecord(next++, { user: `u${busy}`, uid: busy }), { liveLimit: 100 }), { code: 'NFS_ERR_CLUSTER_UNAVAILABLE', statusCode: 503 },
    'a limited arm that lost every race is answered CLUSTER_UNAVAILABLE (retryable), not CONFLICT')
  t.equal(races, 11, 'it lost 11 races in a row (the first try and 10 retries)')
  nodes[0]!.hold.holdNext(`uarms/${busy}`, async () => {}) // the races stop: nothing goes first any more
  t.equal((await ledgerA.insert(intentRecord(next++, { user: `u${busy}`, uid: busy }), { liveLimit: 100 })).version, 1, 'and the next arm goes in')
})
