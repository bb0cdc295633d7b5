// The contract every SecretsStore implementation passes (the file store today; a shared backend later runs the same
// body, the way undici runs one test body over several dispatchers). What it pins down: If-Match writes that really
// fail, racing writers of which exactly one wins, writers without If-Match of which none is lost, a revision that
// only grows and that settle() reaches, a change feed in revision order (the changes of one write may share its
// revision) that never carries a value, and a reopened
// store that holds what was acknowledged. Crash points are backend-specific (test/store/secrets-store.test.ts and
// atomic-file.test.ts for the files).
import type { Test } from 'tap'
import { SecretValue } from '../../../daemon/secret-value.js'
import type { SecretsStore, StoreChange } from '../../../daemon/store/secrets-store.js'

export interface StoreBackend {
  /** a fresh, empty store, and a way to open it again after close() (the same data) */
  open: (t: Test) => Promise<{ store: SecretsStore, reopen: () => Promise<SecretsStore> }>
}

const CANARY = 'CANARY-contract-7f3a-do-not-leak'
const v = (s: string): SecretValue => new SecretValue(s)

export function secretsStoreContract (t: Test, backend: StoreBackend): void {
  t.test('contract: If-Match on update and delete fails with NFS_ERR_CONFLICT once the record moved on', async t => {
    const { store } = await backend.open(t)
    const a = await store.createSecret('user:alice', 'TOKEN', v('one'), 'alice')
    const b = await store.updateSecret('user:alice', 'TOKEN', v('two'), 'alice', { ifVersion: a.version })
    t.equal(b.version, a.version + 1, 'the expected version matched: written')
    await t.rejects(store.updateSecret('user:alice', 'TOKEN', v('three'), 'alice', { ifVersion: a.version }), { code: 'NFS_ERR_CONFLICT' })
    await t.rejects(store.updateSecret('user:alice', 'TOKEN', v('three'), 'alice', { ifVersion: null }), { code: 'NFS_ERR_CONFLICT' }, 'null: must not exist')
    await t.rejects(store.deleteSecret('user:alice', 'TOKEN', 'alice', { ifVersion: a.version }), { code: 'NFS_ERR_CONFLICT' })
    t.equal(store.getSecret('user:alice', 'TOKEN')?.version, b.version, 'a refused write changed nothing')
    t.equal(store.readValues([{ scope: 'user:alice', name: 'TOKEN' }]).get('user:alice\0TOKEN')?.reveal(), 'two')
    await t.rejects(store.updateSecret('user:alice', 'GONE', v('x'), 'alice', { ifVersion: 1 }), { code: 'NFS_ERR_CONFLICT' }, 'a missing record is not at version 1')
    await store.deleteSecret('user:alice', 'TOKEN', 'alice', { ifVersion: b.version })
    t.equal(store.getSecret('user:alice', 'TOKEN'), undefined)

    for (const owner of ['', 'a\0b']) {
      await t.rejects(store.createWorkspace('genomics', 'root', { owner }), { code: 'NFS_ERR_BAD_REQUEST' }, `a malformed owner ${JSON.stringify(owner)} is refused`)
    }
    t.equal(store.getWorkspace('genomics'), undefined, 'and makes nothing')
    const ws = await store.createWorkspace('genomics', 'root', { owner: 'alice' })
    t.same(ws.members, { alice: 'owner' }, 'the owner comes with the create')
    const w2 = await store.setMember('genomics', 'bob', 'launch', { ifVersion: ws.version })
    await t.rejects(store.setGroup('genomics', 'genomics', 'view', { ifVersion: ws.version }), { code: 'NFS_ERR_CONFLICT' })
    await t.rejects(store.deleteWorkspace('genomics', { ifVersion: ws.version }), { code: 'NFS_ERR_CONFLICT' })
    await store.deleteWorkspace('genomics', { ifVersion: w2.version })
    t.equal(store.getWorkspace('genomics'), undefined)
  })

  t.test('contract: two writers with the same expected version: exactly one wins', async t => {
    const { store } = await backend.open(t)
    const a = await store.createSecret('workspace:w', 'DB_PASS', v('base'), 'root')
    for (let round = 0; round < 5; round++) {
      const cur = store.getSecret('workspace:w', 'DB_PASS')!
      const tries = await Promise.allSettled(['left', 'right', 'third'].map(async who =>
        await store.updateSecret('workspace:w', 'DB_PASS', v(`${who}-${round}`), who, { ifVersion: cur.version })))
      const won = tries.filter(r => r.status === 'fulfilled')
      const lost = tries.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
      t.equal(won.length, 1, `round ${round}: one winner`)
      t.same(lost.map(r => (r.reason as { code: string }).code), ['NFS_ERR_CONFLICT', 'NFS_ERR_CONFLICT'])
      const winner = (won[0] as PromiseFulfilledResult<{ updatedBy: string, version: number }>).value
      t.equal(winner.version, cur.version + 1)
      t.equal(store.readValues([{ scope: 'workspace:w', name: 'DB_PASS' }]).get('workspace:w\0DB_PASS')?.reveal(), `${winner.updatedBy}-${round}`, 'the value is the winner\'s')
    }
    t.equal(store.getSecret('workspace:w', 'DB_PASS')?.version, a.version + 5)
  })

  t.test('contract: writers without If-Match are never lost', async t => {
    const { store, reopen } = await backend.open(t)
    await store.createSecret('user:bob', 'COUNTER', v('0'), 'bob')
    const results = await Promise.all(Array.from({ length: 20 }, async (_, i) =>
      await store.updateSecret('user:bob', 'COUNTER', v(String(i + 1)), 'bob')))
    t.same(results.map(r => r.version).sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i + 2), 'each write got its own version')
    await Promise.all(Array.from({ length: 10 }, async (_, i) => await store.createSecret('user:bob', `S_${i}`, v(`v${i}`), 'bob')))
    t.equal(store.counts().secrets, 11)
    await store.close()
    const again = await reopen()
    t.teardown(async () => { await again.close() })
    t.equal(again.getSecret('user:bob', 'COUNTER')?.version, 21, 'every acknowledged write is there after a reopen')
    t.equal(again.listSecrets(['user:bob']).length, 11)
    t.equal(again.readValues([{ scope: 'user:bob', name: 'S_7' }]).get('user:bob\0S_7')?.reveal(), 'v7')
  })

  t.test('contract: the revision only grows, settle() reaches it, the change feed is ordered and holds no value', async t => {
    const { store } = await backend.open(t)
    const changes: StoreChange[] = []
    const stop = store.onChange(c => { changes.push(c) })
    const r0 = store.revision
    await store.createWorkspace('lab', 'root', { owner: 'alice' })
    await store.createSecret('workspace:lab', 'KEY_A', v(CANARY), 'alice')
    await store.createSecret('workspace:lab', 'KEY_B', v(CANARY), 'alice')
    const after = store.revision
    t.ok(after > r0, 'writes raise the revision')
    t.ok(await store.settle() >= after, 'settle() reflects every acknowledged write')
    t.ok(await store.settle(after) >= after, 'settle(atLeast) resolves once there')
    await store.updateSecret('workspace:lab', 'KEY_A', v(CANARY), 'bob')
    await store.markUsed([{ scope: 'workspace:lab', name: 'KEY_B' }], '2030-01-01T00:00:00.000Z')
    t.equal(store.getSecret('workspace:lab', 'KEY_B')?.version, 1, 'a use mark is not a new version')
    await store.createSecret('workspace:lab', 'KEY_C', v(CANARY), 'alice')
    await store.deleteSecret('workspace:lab', 'KEY_C', 'carol')
    await store.deleteWorkspace('lab')
    stop()
    await store.createSecret('user:alice', 'AFTER_STOP', v('x'), 'alice')

    // Changes made by one write may share its revision (one etcd transaction); they never go backwards.
    const revisions = changes.map(c => c.revision)
    t.same(revisions, [...revisions].sort((a, b) => a - b), 'in revision order')
    t.ok(revisions.every(r => r > r0 && r <= store.revision))
    t.same(changes.map(c => c.kind === 'secret' ? `${c.op} ${c.scope}/${c.name}@${c.version}` : `${c.op} ws ${c.name}@${c.version}`), [
      'put ws lab@1',
      'put workspace:lab/KEY_A@1',
      'put workspace:lab/KEY_B@1',
      'put workspace:lab/KEY_A@2',
      'used workspace:lab/KEY_B@1',
      'put workspace:lab/KEY_C@1',
      'delete workspace:lab/KEY_C@1',
      'delete workspace:lab/KEY_A@2',
      'delete workspace:lab/KEY_B@1',
      'delete ws lab@1'
    ], 'every visible change once; a workspace\'s secrets go with it; nothing after unsubscribe')
    t.same(changes.filter(c => c.kind === 'secret').map(c => c.kind === 'secret' ? c.by ?? null : null), ['alice', 'alice', 'bob', null, 'alice', 'carol', null, null],
      'who wrote each put and delete (the event bus names them); none for a use mark or a workspace\'s deletion')
    t.notMatch(JSON.stringify(changes), CANARY, 'no value in a change')
  })

  t.test('contract: refused writes change nothing and tell the feed nothing', async t => {
    const { store } = await backend.open(t)
    await store.createSecret('user:carol', 'ONLY', v('x'), 'carol')
    const changes: StoreChange[] = []
    store.onChange(c => { changes.push(c) })
    await t.rejects(store.createSecret('user:carol', 'ONLY', v('y'), 'carol'), { code: 'NFS_ERR_SECRET_EXISTS' })
    await t.rejects(store.updateSecret('user:carol', 'ONLY', v('y'), 'carol', { ifVersion: 9 }), { code: 'NFS_ERR_CONFLICT' })
    await t.rejects(store.deleteSecret('user:carol', 'NOPE', 'carol'), { code: 'NFS_ERR_SECRET_NOT_FOUND' })
    await t.rejects(store.setMember('nows', 'carol', 'view'), { code: 'NFS_ERR_WORKSPACE_NOT_FOUND' })
    t.same(changes, [])
    t.same(store.listSecrets(['user:carol']).map(m => [m.name, m.version]), [['ONLY', 1]])
  })
}
