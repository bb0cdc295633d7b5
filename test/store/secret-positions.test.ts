// The file store finds a secret through an index of its array (secret-positions.ts), built once per array:
// lookups, reads and marks stay right as secrets come and go and positions shift, and markUsed's copy shares its
// array's index without making it wrong. Values are canaries, read back through readValues.
import t from 'tap'
import { join } from 'node:path'
import { openSecretsStore } from '../../daemon/store/secrets-store.js'
import { generateKey } from '../../daemon/store/crypto.js'
import { SecretValue } from '../../daemon/secret-value.js'
import { silentLogger, tempDir } from './helpers.js'
import { SecretPositions } from '../../daemon/store/secret-positions.js'
import type { SecretRecord } from '../../daemon/store/store-format.js'

const AT = '2030-01-01T00:00:00.000Z'

t.test('SecretPositions: positions by key, carried to a copy, never wrong for an array changed in place', async t => {
  const recs = [{ scope: 'user:a', name: 'X1' }, { scope: 'workspace:w', name: 'X1' }, { scope: 'user:a', name: 'Y2' }] as unknown as SecretRecord[]
  const p = new SecretPositions()
  t.same([p.indexOf(recs, 'user:a', 'X1'), p.indexOf(recs, 'workspace:w', 'X1'), p.indexOf(recs, 'user:a', 'Y2'), p.indexOf(recs, 'user:a', 'Z9')], [0, 1, 2, undefined])
  const copy = recs.slice()
  p.carry(recs, copy)
  t.equal(p.indexOf(copy, 'user:a', 'Y2'), 2, 'a copy with the same positions')
  // Changed in place, against the rule: the answer is still the record with that key.
  ;[copy[0], copy[2]] = [copy[2]!, copy[0]!]
  t.same([p.indexOf(copy, 'user:a', 'X1'), p.indexOf(copy, 'user:a', 'Y2')], [2, 0], 'rebuilt when a position names another record')
  copy.splice(1, 1)
  t.equal(p.indexOf(copy, 'workspace:w', 'X1'), undefined, 'a record gone is not found at a stale position')
})

t.test('reads and marks stay right while secrets come and go', async t => {
  const store = await openSecretsStore({ path: join(tempDir(t), 'store.json'), key: generateKey(), logger: silentLogger(), lastUsedFlushMs: 60_000 })
  t.teardown(async () => { await store.close() })
  const names = Array.from({ length: 40 }, (_, i) => `S${String(i).padStart(2, '0')}`)
  for (const n of names) await store.createSecret('user:alice', n, new SecretValue(`canary-${n}`), 'alice')
  await store.createSecret('workspace:lab', 'S05', new SecretValue('canary-lab-S05'), 'root')
  const read = (list: string[]): Record<string, string> => Object.fromEntries([...store.readValues(list.map(name => ({ scope: 'user:alice' as const, name })))].map(([k, v]) => [k.split('\0')[1]!, v.reveal()]))

  t.same(read(['S03', 'S39']), { S03: 'canary-S03', S39: 'canary-S39' })
  // Marked: the index of the committed array is shared with markUsed's copy.
  await store.markUsed([{ scope: 'user:alice', name: 'S10' }, { scope: 'user:alice', name: 'S10' }, { scope: 'user:alice', name: 'NOPE' }, { scope: 'workspace:lab', name: 'S05' }], AT)
  t.equal(store.getSecret('user:alice', 'S10')?.lastUsed, AT, 'the one named is marked')
  t.equal(store.getSecret('workspace:lab', 'S05')?.lastUsed, AT, 'in its own scope')
  t.equal(store.getSecret('user:alice', 'S05')?.lastUsed, null, 'the same name in another scope is not')
  t.equal(store.listSecrets(['user:alice', 'workspace:lab']).filter(m => m.lastUsed !== null).length, 2, 'nothing else is')

  // Positions shift: the first and a middle one go, one comes back at the end.
  await store.deleteSecret('user:alice', 'S00', 'alice')
  await store.deleteSecret('user:alice', 'S20', 'alice')
  await store.createSecret('user:alice', 'S20', new SecretValue('canary-S20-again'), 'alice')
  await store.updateSecret('user:alice', 'S21', new SecretValue('canary-S21-new'), 'alice')
  t.same(read(['S00', 'S01', 'S19', 'S20', 'S21', 'S39']), { S01: 'canary-S01', S19: 'canary-S19', S20: 'canary-S20-again', S21: 'canary-S21-new', S39: 'canary-S39' }, 'each read finds its own record')
  t.equal(store.getSecret('user:alice', 'S00'), undefined, 'a deleted one is gone')
  await store.markUsed([{ scope: 'user:alice', name: 'S39' }], AT)
  t.equal(store.getSecret('user:alice', 'S39')?.lastUsed, AT)
  t.equal(store.getSecret('user:alice', 'S10')?.lastUsed, AT, 'an earlier mark survives the writes between')
  t.same(read(['S39', 'S10']), { S39: 'canary-S39', S10: 'canary-S10' }, 'marks change no value')
})
