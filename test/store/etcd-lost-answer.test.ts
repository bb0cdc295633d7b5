// A write whose answer is lost after etcd applied it, on a real 3-member etcd: the etcd3 client tries it again on
// another member by itself (UNAVAILABLE is one of the errors it retries), the repeated compare-and-swap fails on its
// own write, and the write must still be reported as done, once (own-write.ts): a secret added is not "exists", a run
// armed is not "already exists" (a ghost run armed with nothing placed), a takeover is not lost. The answer is lost
// below the client's fault handling (helpers/lost-answer.ts), so the retry is the client's own; each case checks the
// answer really was lost, then counts what etcd holds from another connection.
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Membership } from '../../daemon/cluster/membership.js'
import { EventBus, type NfsEvent } from '../../daemon/events.js'
import { createLogger } from '../../daemon/logger.js'
import { tellRecorded, warnRun, type UntoldWarnings } from '../../daemon/runs/warn.js'
import { EtcdOwnership } from '../../daemon/cluster/ownership.js'
import { generateKey } from '../../daemon/store/crypto.js'
import type { EtcdConnection } from '../../daemon/store/etcd/etcd-client.js'
import { openEtcdRunLedger, type EtcdRunLedger } from '../../daemon/store/etcd/etcd-run-ledger.js'
import { openEtcdSecretsStore, type EtcdSecretsStoreHandle } from '../../daemon/store/etcd/etcd-secrets-store.js'
import type { SecretsStore } from '../../daemon/store/secrets-store.js'
import { SecretValue } from '../../daemon/secret-value.js'
import { freshPrefix, startEtcdNamespace } from '../helpers/etcd-cluster.js'
import { CLIENT_TRIES, loseAnswers, type LostAnswers } from '../helpers/lost-answer.js'
import { requireEtcd } from '../helpers/requires.js'
import { intentRecord } from './contract/run-ledger-contract.js'
import { silentLogger } from './helpers.js'

requireEtcd(t)

const logger = silentLogger()

t.test('writes whose answer was lost after they committed', async t => {
  const etcd = await startEtcdNamespace(t)
  if (etcd === null) return
  const connect = (prefix: string): EtcdConnection => etcd.connect({ prefix })
  const keys = async (conn: EtcdConnection, prefix: string): Promise<string[]> => await conn.ns.getAll().prefix(prefix).keys()

  // Two store nodes on a fresh prefix: `a` loses answers, `b` reads what etcd holds.
  const stores = async (t: Test): Promise<{ a: EtcdSecretsStoreHandle, b: EtcdSecretsStoreHandle, lose: LostAnswers, reader: EtcdConnection }> => {
    const prefix = freshPrefix()
    const key = generateKey()
    const connA = connect(prefix)
    const lose = loseAnswers(connA.client)
    const a = await openEtcdSecretsStore({ ns: connA.ns, node: 'a', key, logger })
    const reader = connect(prefix)
    const b = await openEtcdSecretsStore({ ns: reader.ns, node: 'b', key, logger })
    t.teardown(async () => { await a.close(); await b.close() })
    return { a, b, lose, reader }
  }
  const valueOn = (store: SecretsStore): string | undefined =>
    store.readValues([{ scope: 'user:alice', name: 'TOKEN' }]).get('user:alice\0TOKEN')?.reveal()

  t.test('secrets add', async t => {
    const { a, b, lose, reader } = await stores(t)
    lose.loseNext('smeta/user:alice/TOKEN')
    const made = await a.createSecret('user:alice', 'TOKEN', new SecretValue('one'), 'alice')
    t.equal(lose.lost, 1, 'the create\'s answer was lost')
    t.equal(made.version, 1, 'and the create is reported done, not NFS_ERR_SECRET_EXISTS')
    t.equal(a.getSecret('user:alice', 'TOKEN')?.version, 1, 'the writer\'s mirror has it on return')
    await b.settle()
    t.equal(b.getSecret('user:alice', 'TOKEN')?.version, 1)
    t.equal(valueOn(b), 'one')
    t.same(await keys(reader, 'smeta/'), ['smeta/user:alice/TOKEN'], 'one record')
    // What is not this node's write stays refused: the same name again, from this node and from another.
    await t.rejects(a.createSecret('user:alice', 'TOKEN', new SecretValue('one'), 'alice'), { code: 'NFS_ERR_SECRET_EXISTS' })
    await t.rejects(b.createSecret('user:alice', 'TOKEN', new SecretValue('two'), 'alice'), { code: 'NFS_ERR_SECRET_EXISTS' })
  })

  t.test('secrets update with If-Match', async t => {
    const { a, b, lose } = await stores(t)
    await a.createSecret('user:alice', 'TOKEN', new SecretValue('one'), 'alice')
    lose.loseNext('sval/user:alice/TOKEN')
    const updated = await a.updateSecret('user:alice', 'TOKEN', new SecretValue('two'), 'alice', { ifVersion: 1 })
    t.equal(lose.lost, 1, 'the update\'s answer was lost')
    t.equal(updated.version, 2, 'and the update is reported done, not NFS_ERR_CONFLICT')
    await b.settle()
    t.equal(b.getSecret('user:alice', 'TOKEN')?.version, 2, 'written once')
    t.equal(valueOn(b), 'two')
  })

  t.test('secrets delete with If-Match', async t => {
    const { a, b, lose, reader } = await stores(t)
    await a.createSecret('user:alice', 'TOKEN', new SecretValue('one'), 'alice')
    lose.loseNext('sdel/user:alice/TOKEN')
    const gone = await a.deleteSecret('user:alice', 'TOKEN', 'alice', { ifVersion: 1 })
    t.equal(lose.lost, 1, 'the delete\'s answer was lost')
    t.equal(gone.version, 1, 'and the delete is reported done, not NFS_ERR_CONFLICT')
    await b.settle()
    t.equal(b.getSecret('user:alice', 'TOKEN'), undefined)
    t.same(await keys(reader, 'smeta/'), [])
  })

  t.test('workspace create, then a member added with If-Match', async t => {
    const { a, b, lose } = await stores(t)
    lose.loseNext('ws/lab')
    const made = await a.createWorkspace('lab', 'alice', { owner: 'alice' }).catch((err: unknown) => err)
    t.equal(lose.lost, 1, 'the create\'s answer was lost')
    t.match(made, { version: 1 }, 'and it is reported done, not NFS_ERR_WORKSPACE_EXISTS')
    lose.loseNext('ws/lab')
    const member = await a.setMember('lab', 'bob', 'view', { ifVersion: 1 }).catch((err: unknown) => err)
    t.equal(lose.lost, 2, 'the member change\'s answer was lost')
    t.match(member, { version: 2 }, 'and it is reported done, once')
    await b.settle()
    t.equal(b.getWorkspace('lab')?.version, 2)
    await t.rejects(a.createWorkspace('lab', 'alice', { owner: 'alice' }), { code: 'NFS_ERR_WORKSPACE_EXISTS' }, 'a second create is still refused')
  })

  // Every try of the client's lost (the first committed, the repeats failed their compare on it, and their answers
  // were lost too): the client gives up with UNAVAILABLE, and the writer reads the keys back once etcd answers.
  t.test('secrets add, every try\'s answer lost', async t => {
    const { a, b, lose, reader } = await stores(t)
    lose.loseNext('smeta/user:alice/TOKEN', CLIENT_TRIES)
    const made = await a.createSecret('user:alice', 'TOKEN', new SecretValue('one'), 'alice').catch((err: unknown) => err)
    t.equal(lose.lost, CLIENT_TRIES, 'the answers of all the client\'s tries were lost')
    t.match(made, { version: 1 }, 'and the create is reported done, not NFS_ERR_CLUSTER_UNAVAILABLE')
    t.equal(a.getSecret('user:alice', 'TOKEN')?.version, 1, 'the writer\'s mirror has it on return')
    await b.settle()
    t.equal(valueOn(b), 'one')
    t.same(await keys(reader, 'smeta/'), ['smeta/user:alice/TOKEN'], 'one record')
    await t.rejects(a.createSecret('user:alice', 'TOKEN', new SecretValue('one'), 'alice'), { code: 'NFS_ERR_SECRET_EXISTS' })
  })

  t.test('a write that never reached etcd stays NFS_ERR_CLUSTER_UNAVAILABLE', async t => {
    const { a, lose, reader } = await stores(t)
    lose.dropNext('smeta/user:alice/TOKEN', CLIENT_TRIES)
    await t.rejects(a.createSecret('user:alice', 'TOKEN', new SecretValue('one'), 'alice'), { code: 'NFS_ERR_CLUSTER_UNAVAILABLE' })
    t.equal(lose.lost, CLIENT_TRIES, 'all the client\'s tries were refused')
    t.same(await keys(reader, 'smeta/'), [], 'nothing written')
    t.equal(a.getSecret('user:alice', 'TOKEN'), undefined)
  })

  t.test('workspace create, every try\'s answer lost', async t => {
    const { a, b, lose } = await stores(t)
    lose.loseNext('ws/lab', CLIENT_TRIES)
    const made = await a.createWorkspace('lab', 'alice', { owner: 'alice' }).catch((err: unknown) => err)
    t.equal(lose.lost, CLIENT_TRIES, 'the answers of all the client\'s tries were lost')
    t.match(made, { version: 1 }, 'and it is reported done, not NFS_ERR_CLUSTER_UNAVAILABLE')
    await b.settle()
    t.equal(b.getWorkspace('lab')?.version, 1)
    await t.rejects(a.createWorkspace('lab', 'alice', { owner: 'alice' }), { code: 'NFS_ERR_WORKSPACE_EXISTS' }, 'a second create is still refused')
  })

  t.test('workspace delete (a retried delete finds the workspace gone: its own delete)', async t => {
    const { a, b, lose, reader } = await stores(t)
    await a.createWorkspace('lab', 'alice', { owner: 'alice' })
    await a.createSecret('workspace:lab', 'TOKEN', new SecretValue('one'), 'alice')
    lose.loseNext('ws/lab')
    const gone = await a.deleteWorkspace('lab').then(() => 'deleted', (err: unknown) => err)
    t.equal(lose.lost, 1, 'the delete\'s answer was lost')
    t.equal(gone, 'deleted', 'and the delete is reported done, not NFS_ERR_WORKSPACE_NOT_FOUND')
    await b.settle()
    t.equal(b.getWorkspace('lab'), undefined)
    t.same(await keys(reader, 'smeta/'), [], 'its secrets went with it')
    // A delete of a workspace that is gone is still refused, and the name can be used again.
    await t.rejects(a.deleteWorkspace('lab'), { code: 'NFS_ERR_WORKSPACE_NOT_FOUND' })
    await t.rejects(b.deleteWorkspace('lab'), { code: 'NFS_ERR_WORKSPACE_NOT_FOUND' })
    t.match(await a.createWorkspace('lab', 'alice', { owner: 'alice' }), { version: 1 }, 'created again')

    lose.loseNext('ws/lab')
    const again = await a.deleteWorkspace('lab', { ifVersion: 1 }).then(() => 'deleted', (err: unknown) => err)
    t.equal(lose.lost, 2, 'the second delete\'s answer was lost')
    t.equal(again, 'deleted', 'with If-Match: reported done, not NFS_ERR_CONFLICT')
    await b.settle()
    t.equal(b.getWorkspace('lab'), undefined)
  })

  t.test('workspace delete, every try\'s answer lost', async t => {
    const { a, b, lose } = await stores(t)
    await a.createWorkspace('lab', 'alice', { owner: 'alice' })
    lose.loseNext('ws/lab', CLIENT_TRIES)
    const gone = await a.deleteWorkspace('lab').then(() => 'deleted', (err: unknown) => err)
    t.equal(lose.lost, CLIENT_TRIES, 'the answers of all the client\'s tries were lost')
    t.equal(gone, 'deleted', 'and the delete is reported done')
    await b.settle()
    t.equal(b.getWorkspace('lab'), undefined)
  })

  // One cluster node's ledger and ownership on a fresh prefix (as daemon's backend builds them), losing answers.
  const ledgerNode = async (t: Test): Promise<{ led: EtcdRunLedger, ownership: EtcdOwnership, lose: LostAnswers, reader: EtcdConnection }> => {
    const prefix = freshPrefix()
    const conn = connect(prefix)
    const lose = loseAnswers(conn.client)
    const stateDir = mkdtempSync(join(tmpdir(), 'nfs-lost-'))
    t.teardown(() => { rmSync(stateDir, { recursive: true, force: true }) })
    const membership = await Membership.join({ client: conn.client, ns: conn.ns, node: 'a', host: 'h-a', ttlSeconds: 10, stateDir, version: 'test' })
    let ledger: EtcdRunLedger | null = null
    const ownership = await EtcdOwnership.open({ ns: conn.ns, membership, runs: () => ledger?.entries() ?? [] })
    ledger = await openEtcdRunLedger({ ns: conn.ns, node: 'a', owner: { claimOp: id => ownership.claimOp(id), key: id => `own/${id}`, node: 'a' } })
    const led = ledger
    t.teardown(async () => { await led.close(); await ownership.close(); await membership.close({ revoke: true }) })
    return { led, ownership, lose, reader: connect(prefix) }
  }

  t.test('arm (a ledger insert with its owner key)', async t => {
    const { led, ownership, lose, reader } = await ledgerNode(t)
    const run = intentRecord(1)
    lose.loseNext(`runs/${run.runId}`)
    const armed = await led.insert(run)
    t.equal(lose.lost, 1, 'the arm\'s answer was lost')
    t.equal(armed.version, 1, 'and the run is armed, not NFS_ERR_CONFLICT "already exists"')
    t.equal(ownership.ownerOf(run.runId), 'a', 'owned by the node that armed it')
    t.same(await keys(reader, 'runs/'), [`runs/${run.runId}`], 'one run')
    await t.rejects(led.insert(run), { code: 'NFS_ERR_CONFLICT' }, 'the same run armed again is still refused')
  })

  t.test('arm, every try\'s answer lost', async t => {
    const { led, ownership, lose, reader } = await ledgerNode(t)
    const run = intentRecord(1)
    lose.loseNext(`runs/${run.runId}`, CLIENT_TRIES)
    const armed = await led.insert(run).catch((err: unknown) => err)
    t.equal(lose.lost, CLIENT_TRIES, 'the answers of all the client\'s tries were lost')
    t.match(armed, { version: 1 }, 'and the run is armed, not NFS_ERR_CLUSTER_UNAVAILABLE (its row left behind)')
    t.equal(led.get(run.runId)?.version, 1, 'the writer\'s mirror has it on return')
    t.equal(ownership.ownerOf(run.runId), 'a', 'owned by the node that armed it')
    t.same(await keys(reader, 'runs/'), [`runs/${run.runId}`], 'one run')
  })

  t.test('an owner\'s update', async t => {
    const { led, lose } = await ledgerNode(t)
    const run = await led.insert(intentRecord(1))
    lose.loseNext(`runs/${run.runId}`)
    const started = await led.update(run.runId, 1, r => ({ ...r, state: 'running' }), { asOwner: true })
    t.equal(lose.lost, 1, 'the update\'s answer was lost')
    t.equal(started.version, 2, 'and the update is reported done, once')
    t.equal(led.get(run.runId)?.version, 2)
  })

  // Not the owner's: told by the row's bytes alone. As a conflict, the retry of runs/transition.ts found the change
  // made and declined, and the caller acted as if it had changed nothing.
  t.test('an update that is not the owner\'s', async t => {
    const { led, lose } = await ledgerNode(t)
    const run = await led.insert(intentRecord(1))
    lose.loseNext(`runs/${run.runId}`)
    const bound = await led.update(run.runId, 1, r => ({ ...r, slurmJobId: '42', expiresAt: null }))
    t.equal(lose.lost, 1, 'the update\'s answer was lost')
    t.equal(bound.version, 2, 'and the update is reported done, not NFS_ERR_CONFLICT')
    await t.rejects(led.update(run.runId, 1, r => ({ ...r, slurmJobId: '42', expiresAt: null })), { code: 'NFS_ERR_CONFLICT' },
      'the same change from the version before is still a conflict')
  })

  t.test('a run warning whose write\'s answer was lost is still told, once', async t => {
    const { led, lose } = await ledgerNode(t)
    const run = await led.insert(intentRecord(1))
    const events = new EventBus()
    const log = createLogger('silent')
    const told: NfsEvent[] = []
    events.subscribe(e => { if (e.type === 'run.warning') told.push(e) })
    lose.loseNext(`runs/${run.runId}`)
    const fresh = await warnRun({ ledger: led, events }, log, run.runId, { code: 'nextflow-dollar', reason: 'test', names: ['TOKEN'] })
    t.equal(lose.lost, 1, 'the warning\'s write lost its answer')
    t.equal(fresh, true, 'the warning is new')
    t.same(told.map(e => e.runId), [run.runId], 'published once')
    t.same(led.get(run.runId)?.warnings, ['nextflow-dollar'], 'recorded once')
    t.equal(await warnRun({ ledger: led, events }, log, run.runId, { code: 'nextflow-dollar', reason: 'test', names: ['TOKEN'] }), false, 'and not told again')
    t.equal(told.length, 1)
  })

  // Every try's answer lost, the first having committed: the write answers CLUSTER_UNAVAILABLE (a change that is not
  // the owner's is not read back), the record says the warning was given, and the monitor's next pass would never
  // warn again. Kept by the monitor (UntoldWarnings) and told once the record shows it.
  t.test('a run warning whose every try\'s answer was lost is told once the record shows it', async t => {
    const { led, lose } = await ledgerNode(t)
    const run = await led.insert(intentRecord(1))
    const events = new EventBus()
    const log = createLogger('silent')
    const told: NfsEvent[] = []
    events.subscribe(e => { if (e.type === 'run.warning') told.push(e) })
    const untold: UntoldWarnings = new Map()
    const w = { code: 'nextflow-dollar', reason: 'test', names: ['TOKEN'] }
    lose.loseNext(`runs/${run.runId}`, CLIENT_TRIES)
    await t.rejects(warnRun({ ledger: led, events }, log, run.runId, w, untold), { code: 'NFS_ERR_CLUSTER_UNAVAILABLE' })
    t.equal(lose.lost, CLIENT_TRIES, 'the answers of all the client\'s tries were lost')
    t.equal(told.length, 0, 'not told yet')
    await led.settle()
    const recorded = led.get(run.runId)!
    t.same(recorded.warnings, ['nextflow-dollar'], 'recorded all the same')
    tellRecorded({ events }, log, recorded, untold)
    t.same(told.map(e => [e.runId, e.state]), [[run.runId, 'nextflow-dollar']], 'told once the record shows it')
    tellRecorded({ events }, log, recorded, untold)
    t.equal(told.length, 1, 'and once only')
  })

  t.test('a takeover', async t => {
    const { led, ownership, lose, reader } = await ledgerNode(t)
    // An orphan: its row without an owner key, as after its owner's lease ran out.
    const orphan = intentRecord(2)
    await reader.ns.put(`runs/${orphan.runId}`).value(JSON.stringify({ ...orphan, version: 1 }))
    await led.settle()
    const entry = led.entry(orphan.runId)
    if (entry === undefined) throw new Error('the orphan is not mirrored')
    lose.loseNext(`own/${orphan.runId}`)
    t.equal(await ownership.adopt(orphan.runId, entry.mod), true, 'the takeover is reported done, not lost to "another node"')
    t.equal(lose.lost, 1, 'the takeover\'s answer was lost')
    t.equal(ownership.ownerOf(orphan.runId), 'a')
    t.equal(await ownership.adopt(orphan.runId, entry.mod), false, 'a run already owned is not taken over again')
  })
})
