// Events from the change feeds: which events a change of the store or the ledger makes (pure, by table), and the
// bus following real feeds: a change seen twice (a resumed watch) makes no event twice, and a run record kept in
// memory (a full disk) and written later makes its events once.
import t from 'tap'
import { EventBus, runEvents, secretEvents, type FeedEvent, type NfsEvent } from '../../daemon/events.js'
import type { LedgerChange } from '../../daemon/store/run-ledger.js'
import type { StoreChange } from '../../daemon/store/secrets-store.js'
import type { RootChange } from '../../daemon/store/watch-roots.js'
import type { RunRecord, TargetRecord } from '../../daemon/types.js'
import { intentRecord } from '../store/contract/run-ledger-contract.js'

const target = (state: TargetRecord['state'], attempts = 0): TargetRecord => ({ state, attempts, nextAttemptAt: null, lastError: null, refs: [], revokedAt: null })
const run = (over: Partial<RunRecord>, ...targets: TargetRecord[]): RunRecord => ({
  ...intentRecord(1, { workspace: 'lab', names: ['A', 'B'] }),
  targets: Object.fromEntries(targets.map((tr, i) => [['hpc', 'aws'][i], tr])),
  version: 1,
  ...over
})
const base = { user: 'alice', workspace: 'lab', runId: intentRecord(1).runId }

t.test('secretEvents, by table', async t => {
  const c = (over: Partial<StoreChange>): StoreChange => ({ revision: 1, kind: 'secret', op: 'put', scope: 'workspace:lab', name: 'TOKEN', version: 1, by: 'alice', ...over } as StoreChange)
  const rows: Array<[string, StoreChange, FeedEvent[]]> = [
    ['a first version is a creation, by its writer', c({}), [{ type: 'secret.created', user: 'alice', workspace: 'lab', names: ['TOKEN'] }]],
    ['a later version is an update', c({ version: 4, by: 'bob' }), [{ type: 'secret.updated', user: 'bob', workspace: 'lab', names: ['TOKEN'] }]],
    ['a delete, by who deleted it', c({ op: 'delete', version: 4, by: 'carol' }), [{ type: 'secret.deleted', user: 'carol', workspace: 'lab', names: ['TOKEN'] }]],
    ['a personal secret has no workspace', c({ scope: 'user:alice' }), [{ type: 'secret.created', user: 'alice', names: ['TOKEN'] }]],
    ['a lastUsed mark is no event', c({ op: 'used', by: undefined }), []],
    ['a workspace deletion\'s secrets make none (nobody wrote them: no by)', c({ op: 'delete', by: undefined }), []],
    ['a workspace change is no secret event', { revision: 1, kind: 'workspace', op: 'put', name: 'lab', version: 2 }, []]
  ]
  for (const [what, change, want] of rows) t.same(secretEvents(change), want, what)
})

t.test('runEvents, by table', async t => {
  const intent = run({}, target('provisioning'), target('provisioning'))
  const half = run({ version: 2 }, target('provisioned'), target('provisioning'))
  const armed = run({ version: 3 }, target('provisioned'), target('provisioned'))
  const running = run({ version: 4, state: 'running' }, target('provisioned'), target('provisioned'))
  const killed = run({ version: 5, state: 'killed', endReason: 'revoked by alice' }, target('revoking'), target('revoking'))
  const oneDown = run({ version: 6, state: 'killed', endReason: 'revoked by alice' }, target('revoked'), target('revoking'))
  const failedOnce = run({ version: 7, state: 'killed', endReason: 'revoked by alice' }, target('revoked'), target('revoke_failed', 1))
  const failedTwice = run({ version: 8, state: 'killed', endReason: 'revoked by alice' }, target('revoked'), target('revoke_failed', 2))
  const done = run({ version: 9, state: 'killed', endReason: 'revoked by alice' }, target('revoked'), target('revoked'))
  const refusedLive = run({ version: 3 }, target('provisioned'), target('revoked'))
  const types = (prev: RunRecord | null, next: RunRecord): unknown[] => runEvents(prev, next).map(e => e.event)
  const rows: Array<[string, RunRecord | null, RunRecord, unknown[]]> = [
    ['the intent: nothing yet', null, intent, []],
    ['one target of two placed: nothing yet', intent, half, []],
    ['every target placed, armed', half, armed, [
      { ...base, type: 'run.provisioned', names: ['A', 'B'], state: 'armed' }, { ...base, type: 'run.armed', names: ['A', 'B'], state: 'armed' }]],
    ['every target placed, a run started at once (mode run)', half, { ...armed, state: 'running' }, [
      { ...base, type: 'run.provisioned', names: ['A', 'B'], state: 'running' }, { ...base, type: 'run.started', names: ['A', 'B'], state: 'running' }]],
    ['an armed run seen starting', armed, running, [{ ...base, type: 'run.started', state: 'running' }]],
    ['a running run written again (its pid learnt): nothing', running, { ...running, version: 5, pid: 42 }, []],
    ['the end', running, killed, [{ ...base, type: 'run.killed', state: 'killed', reason: 'revoked by alice' }]],
    ['one target of two revoked: nothing', killed, oneDown, []],
    ['a failed revoke', oneDown, failedOnce, [{ ...base, type: 'run.revoke_failed', target: 'aws', state: 'revoke_failed' }]],
    ['failed again: once per attempt', failedOnce, failedTwice, [{ ...base, type: 'run.revoke_failed', target: 'aws', state: 'revoke_failed' }]],
    ['all revoked', failedTwice, done, [{ ...base, type: 'run.revoked', names: ['A', 'B'], state: 'killed' }]],
    ['written again once revoked: nothing', done, { ...done, version: 10 }, []],
    ['a target refused while provisioning (recorded revoked, run still live): no provisioned', half, refusedLive, []],
    ['then ended as failed: failed, revoked', refusedLive, { ...refusedLive, state: 'failed', endReason: 'provisioning to aws failed', targets: { hpc: target('revoked'), aws: target('revoked') } }, [
      { ...base, type: 'run.failed', state: 'failed', reason: 'provisioning to aws failed' }, { ...base, type: 'run.revoked', names: ['A', 'B'], state: 'failed' }]],
    ['several writes seen as one (a node catching up): the events of their sum', armed, done, [
      { ...base, type: 'run.killed', state: 'killed', reason: 'revoked by alice' }, { ...base, type: 'run.revoked', names: ['A', 'B'], state: 'killed' }]]
  ]
  for (const [what, prev, next, want] of rows) t.same(types(prev, next), want, what)
})

/** A feed the test drives, as a backend's onChange would. */
function feed<C> (): { onChange: (l: (c: C) => void) => () => void, send: (c: C) => void } {
  const ls = new Set<(c: C) => void>()
  return { onChange: l => { ls.add(l); return () => { ls.delete(l) } }, send: c => { for (const l of ls) l(c) } }
}

t.test('the bus follows the feeds: a change delivered twice (a watch resumed after a reconnect) is one event', async t => {
  const store = feed<StoreChange>()
  const ledger = feed<LedgerChange>()
  const bus = new EventBus(() => new Date(0))
  const got: NfsEvent[] = []
  bus.subscribe(e => got.push(e))
  const stop = bus.follow({ store, ledger })
  const put: StoreChange = { revision: 7, kind: 'secret', op: 'put', scope: 'user:alice', name: 'T', version: 1, by: 'alice' }
  store.send(put)
  store.send(put)
  store.send({ ...put, revision: 5 })
  store.send({ ...put, revision: 9, version: 2 })
  const armed = run({ version: 3 }, target('provisioned'))
  const change = (previous: RunRecord | null, r: RunRecord, revision: number, durable?: boolean): LedgerChange =>
    ({ revision, op: 'put', runId: r.runId, version: r.version, run: r, previous, ...(durable !== undefined ? { durable } : {}) })
  ledger.send(change(run({}, target('provisioning')), armed, 3))
  ledger.send(change(run({}, target('provisioning')), armed, 3))
  // A full disk: the end and the revoke are kept in memory (durable: false, the revision not raised), then written
  // in one write whose change spans both.
  const killed = run({ version: 4, state: 'killed', endReason: 'x' }, target('revoking'))
  const revoked = run({ version: 5, state: 'killed', endReason: 'x' }, target('revoked'))
  ledger.send(change(armed, killed, 3, false))
  ledger.send(change(killed, revoked, 3, false))
  ledger.send(change(armed, { ...revoked, version: 4 }, 4))
  t.same(got.map(e => e.type), ['secret.created', 'secret.updated', 'run.provisioned', 'run.armed', 'run.killed', 'run.revoked'])
  t.ok(got.every(e => e.at === new Date(0).toISOString()), 'stamped by the bus\'s clock')
  stop()
  store.send({ ...put, revision: 10, version: 3 })
  t.equal(got.length, 6, 'nothing after unfollow')
})

t.test('watch events from the shared roots\' feed: named for the owner, once per root and revision', async t => {
  const roots = feed<RootChange>()
  const bus = new EventBus(() => new Date(0))
  const got: NfsEvent[] = []
  bus.subscribe(e => got.push(e))
  bus.follow({ roots: { onRoots: l => roots.onChange(l) } })
  const w = { root: '/data/alice', depth: 3, workspace: 'lab', targets: [], poll: false, intervalMs: 1000, uid: 1001, user: 'alice', createdAt: '', version: 1 }
  roots.send({ op: 'added', watch: w, revision: 4 })
  roots.send({ op: 'added', watch: w, revision: 4 })
  roots.send({ op: 'removed', watch: w, revision: 6 })
  roots.send({ op: 'added', watch: w, revision: 9 })
  t.same(got.map(({ at, ...e }) => e), [
    { type: 'watch.added', user: 'alice', workspace: 'lab', reason: '/data/alice' },
    { type: 'watch.removed', user: 'alice', reason: '/data/alice' },
    { type: 'watch.added', user: 'alice', workspace: 'lab', reason: '/data/alice' }
  ], 'a change delivered twice is one event; a root removed and added again is announced again')
})
