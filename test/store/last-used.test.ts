// lastUsed is advisory metadata kept off the arm's path: marked in memory at once, written by the store's next
// write, by a coalesced write of its own, or at close; a full disk keeps the marks for a later write.
import t from 'tap'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { LAST_USED_MAX_WINDOWS, openSecretsStore } from '../../daemon/store/secrets-store.js'
import { generateKey } from '../../daemon/store/crypto.js'
import { SecretValue } from '../../daemon/secret-value.js'
import type { StoreData } from '../../daemon/store/store-format.js'
import { silentLogger, tempDir, tinyTmpfs } from './helpers.js'
import type { Teardown } from './helpers.js'
import { fillDisk } from '../helpers/fill-disk.js'
import { whyNotRoot } from '../helpers/requires.js'
import { ManualTimers } from '../helpers/manual-timers.js'

const AT = '2030-01-01T00:00:00.000Z'
const LATER = '2030-01-02T00:00:00.000Z'
const TOKEN = { scope: 'user:alice' as const, name: 'TOKEN' }

async function fresh (t: Teardown, flushMs: number, dir = tempDir(t), timers?: ManualTimers): Promise<{ path: string, store: Awaited<ReturnType<typeof openSecretsStore>> }> {
  const path = join(dir, 'store.json')
  const store = await openSecretsStore({ path, key: generateKey(), logger: silentLogger(), lastUsedFlushMs: flushMs, ...(timers !== undefined ? { timers } : {}) })
  t.teardown(async () => { await store.close() })
  await store.createSecret(TOKEN.scope, TOKEN.name, new SecretValue('v'), 'alice')
  await store.createSecret('user:alice', 'OTHER', new SecretValue('w'), 'alice')
  return { path, store }
}

function onDisk (path: string, name = TOKEN.name): string | null | undefined {
  const data = JSON.parse(readFileSync(path, 'utf8')) as StoreData
  return data.secrets.find(s => s.name === name)?.lastUsed
}

t.test('a mark shows at once, reaches disk when its flush interval has passed, and keeps the version', async t => {
  const timers = new ManualTimers()
  const { path, store } = await fresh(t, 150, undefined, timers)
  const gen = store.revision
  await store.markUsed([TOKEN], AT)
  t.equal(store.getSecret(TOKEN.scope, TOKEN.name)?.lastUsed, AT, 'listings show it at once')
  t.ok(store.revision > gen, 'derived caches see a change')
  t.equal(onDisk(path), null, 'the arm did not wait for a store write')
  await timers.advance(149)
  await store.idle()
  t.equal(onDisk(path), null, 'not written before the interval has passed')
  await timers.advance(1)
  await store.idle()
  t.equal(onDisk(path), AT, 'the flush wrote it')
  t.equal(onDisk(path, 'OTHER'), null, 'only the marked secret')
  t.equal(store.getSecret(TOKEN.scope, TOKEN.name)?.version, 1)
})

t.test('a burst of marks is written once it goes quiet, not in the middle of it; and no later than its bound', async t => {
  const timers = new ManualTimers()
  const { path, store } = await fresh(t, 1000, undefined, timers)
  // Told by what the file holds, not by its inode: each write makes a new file, but the number of the one it
  // replaced is free again, and two writes in a row can bring it back (seen).
  const mark = (i: number): string => `2030-01-01T00:${String(Math.floor(i / 60)).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}.000Z`
  // 30 marks 50 ms apart: 1.5 s, longer than the 1 s window, with no gap of 1 s in it.
  for (let i = 0; i < 30; i++) {
    await store.markUsed([TOKEN], mark(i))
    if (i < 29) await timers.advance(50)
  }
  await timers.advance(999)
  // A write the timers started would still be on the thread pool: wait for it before calling it absent.
  await store.idle()
  t.equal(onDisk(path), null, 'store.json was not rewritten during the burst nor 999 ms after it')
  await timers.advance(1)
  await store.idle()
  t.equal(onDisk(path), mark(29), 'written once the burst went quiet, with its last mark')

  // Marks that never go quiet (one every 500 ms) are written when LAST_USED_MAX_WINDOWS windows have passed.
  const bound = 1000 * LAST_USED_MAX_WINDOWS
  let i = 100
  for (let at = 0; at < bound; at += 500) {
    await store.markUsed([TOKEN], mark(i++))
    await timers.advance(at + 500 < bound ? 500 : 499)
  }
  await store.idle()
  t.equal(onDisk(path), mark(29), `not rewritten before ${bound} ms of marks`)
  await timers.advance(1)
  await store.idle()
  t.equal(onDisk(path), mark(i - 1), 'written at the bound, with the last mark so far')
})

t.test('marks ride along with the next store write, and one made during a write is not lost', async t => {
  const { path, store } = await fresh(t, 60_000)
  await store.markUsed([TOKEN], AT)
  await store.createSecret('user:alice', 'THIRD', new SecretValue('x'), 'alice')
  t.equal(onDisk(path), AT, 'the create carried the pending mark')
  // A mark made while a write is in flight: that write was built before it, so it must be laid over afterwards.
  const writing = store.createSecret('user:alice', 'FOURTH', new SecretValue('y'), 'alice')
  // One turn of the loop: the mutation has built its state and its write (several fs calls in turn) is under way.
  await new Promise(resolve => setImmediate(resolve))
  await store.markUsed([{ scope: 'user:alice', name: 'OTHER' }], LATER)
  await writing
  t.equal(store.getSecret('user:alice', 'OTHER')?.lastUsed, LATER, 'memory still has the mark')
  t.equal(onDisk(path, 'OTHER'), null, 'not on disk yet')
  await store.close()
  t.equal(onDisk(path, 'OTHER'), LATER, 'close wrote it')
  t.equal(onDisk(path), AT)
})

t.test('a full disk keeps the marks in memory; the next write after space returns carries them', { skip: whyNotRoot() }, async t => { // a tmpfs mount
  const dir = tinyTmpfs(t, '64k')
  const { path, store } = await fresh(t, 60_000, dir)
  const filler = fillDisk(dir)
  const before = readFileSync(path, 'utf8')
  await store.markUsed([TOKEN], AT)
  await t.rejects(store.createSecret('user:alice', 'NOROOM', new SecretValue('z'), 'alice'), { code: 'NFS_ERR_STORAGE' })
  t.equal(readFileSync(path, 'utf8'), before, 'store.json unchanged')
  t.equal(store.getSecret(TOKEN.scope, TOKEN.name)?.lastUsed, AT, 'the mark is still in memory')
  rmSync(filler)
  await store.createSecret('user:alice', 'ROOM', new SecretValue('z'), 'alice')
  t.equal(onDisk(path), AT, 'written with the first write that fits')
})
