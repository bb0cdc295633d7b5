// The run ledger on its own: the file is exactly the JSON of what memory holds (records encoded one by one and
// kept), updates are compare-and-swap, and updateBestEffort lets memory run ahead of a full disk until a write fits.
import t from 'tap'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { openRunLedger } from '../../daemon/store/run-ledger.js'
import type { RunRecord } from '../../daemon/types.js'
import { tempDir, tinyTmpfs } from './helpers.js'
import { fillDisk } from '../helpers/fill-disk.js'
import { intentRecord, runLedgerContract } from './contract/run-ledger-contract.js'
import { whyNotRoot } from '../helpers/requires.js'

// The contract's intent record, with a launch dir in non-ASCII UTF-8 so the byte-for-byte check covers it.
const record = (i: number): Omit<RunRecord, 'version'> => intentRecord(i, { launchDir: '/home/alice/ünïcode' })

t.test('the file is byte for byte JSON.stringify of the ledger after inserts, updates and removals', async t => {
  const path = join(tempDir(t), 'runs.json')
  const ledger = await openRunLedger(path)
  t.teardown(async () => { await ledger.close() })
  for (let i = 0; i < 5; i++) await ledger.insert(record(i))
  const first = ledger.all()[1]!
  await ledger.update(first.runId, first.version, r => ({ ...r, state: 'killed', endReason: 'quote " and \\ and \n' }))
  await t.rejects(ledger.update(first.runId, first.version, r => r), { code: 'NFS_ERR_CONFLICT' }, 'a stale version is refused')
  await ledger.remove([ledger.all()[3]!.runId])
  const expected = JSON.stringify({ format: 1, runs: ledger.all() }) + '\n'
  t.equal(readFileSync(path, 'utf8'), expected)
  t.equal(ledger.get(first.runId)?.version, first.version + 1)
  await ledger.close()
  const again = await openRunLedger(path)
  t.same(again.all(), JSON.parse(expected).runs, 'a reopen reads it back')
  await again.close()
})

t.test('updateBestEffort on a full disk: memory moves on, disk stays, the first write that fits carries it', { skip: whyNotRoot() }, async t => { // a tmpfs mount
  const dir = tinyTmpfs(t, '64k')
  const path = join(dir, 'runs.json')
  const ledger = await openRunLedger(path)
  t.teardown(async () => { await ledger.close() })
  const a = await ledger.insert(record(1))
  const filler = fillDisk(dir)
  const before = readFileSync(path, 'utf8')
  await t.rejects(ledger.update(a.runId, a.version, r => ({ ...r, state: 'running' })), { code: 'NFS_ERR_STORAGE' }, 'a plain update is refused')
  t.equal(ledger.get(a.runId)?.state, 'armed', 'and leaves memory as it was')
  const kept = await ledger.updateBestEffort(a.runId, a.version, r => ({ ...r, state: 'killed' }))
  t.same([kept.durable, kept.run.state, ledger.get(a.runId)?.state], [false, 'killed', 'killed'])
  t.same(ledger.unsynced(), [a.runId])
  t.equal(readFileSync(path, 'utf8'), before, 'disk unchanged')
  await t.rejects(ledger.sync(), { code: 'NFS_ERR_STORAGE' }, 'sync fails while the disk is full')
  await t.rejects(ledger.insert(record(2)), { code: 'NFS_ERR_STORAGE' })
  t.equal(ledger.all().length, 1, 'the refused insert left nothing in memory')
  rmSync(filler)
  await ledger.sync()
  t.same(ledger.unsynced(), [])
  const onDisk = (JSON.parse(readFileSync(path, 'utf8')) as { runs: RunRecord[] }).runs
  t.same(onDisk.map(r => [r.runId, r.state, r.version]), [[a.runId, 'killed', a.version + 1]])
})

// The shared contract (test/store/contract/) over the file ledger: each case on a runs.json of its own.
runLedgerContract(t, {
  open: async (t) => {
    const path = join(tempDir(t), 'runs.json')
    const ledger = await openRunLedger(path)
    t.teardown(async () => { await ledger.close() })
    return { ledger, reopen: async () => await openRunLedger(path) }
  }
})
