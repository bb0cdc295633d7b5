// The run ledger on its own: the snapshot is exactly the JSON of what memory holds (records encoded one by one and
// kept), updates are compare-and-swap. (Records kept while the disk is full: test/runs/deferred-records.test.ts.)
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { openRunLedger } from '../../daemon/store/run-ledger.js'
import type { RunRecord } from '../../daemon/types.js'
import { tempDir } from './helpers.js'
import { intentRecord, runLedgerContract } from './contract/run-ledger-contract.js'
import { ledgerOnDisk } from '../helpers/ledger-file.js'

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
  // Seven changes (5 inserts, an update, a removal), folded into runs.json at the stop (store/run-journal.ts).
  const expected = JSON.stringify({ format: 1, runs: ledger.all(), journalSeq: 7 }) + '\n'
  t.equal(ledger.get(first.runId)?.version, first.version + 1)
  await ledger.close()
  t.equal(readFileSync(path, 'utf8'), expected)
  const again = await openRunLedger(path)
  t.same(again.all(), JSON.parse(expected).runs, 'a reopen reads it back')
  await again.close()
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

// UpdateOptions.decided (the monitor starts a terminal run's local removal from it): called with the record that is
// about to be written, before it is on disk; never for a change that is refused; a hook that throws fails nothing.
t.test('decided: the record before its write, never for a refused change, a throw fails nothing', async t => {
  const dir = tempDir(t)
  const path = join(dir, 'runs.json')
  const ledger = await openRunLedger(path)
  t.teardown(async () => { await ledger.close() })
  const run = await ledger.insert(record(1))
  const onDisk = (): RunRecord | undefined => ledgerOnDisk(dir).runs.find(r => r.runId === run.runId)
  const seen: Array<{ version: number, state: string, diskVersion: number | undefined }> = []
  const decided = (rec: RunRecord): void => { seen.push({ version: rec.version, state: rec.state, diskVersion: onDisk()?.version }) }

  await ledger.update(run.runId, run.version, () => null, { decided })
  t.same(seen, [], 'a change that declines is not decided')
  await t.rejects(ledger.update(run.runId, run.version + 5, r => ({ ...r, state: 'killed' }), { decided }), { code: 'NFS_ERR_CONFLICT' })
  t.same(seen, [], 'nor one refused as a conflict')

  const ended = await ledger.update(run.runId, run.version, r => ({ ...r, state: 'completed' }), { decided })
  t.same(seen, [{ version: run.version + 1, state: 'completed', diskVersion: run.version }], 'called once, with the new record, while the disk still held the old one')
  t.equal(onDisk()?.version, ended.version, 'and the write then happened')

  const again = await ledger.update(run.runId, ended.version, r => ({ ...r, endReason: 'x' }), { decided: () => { throw new Error('hook broke') } })
  t.equal(again.version, ended.version + 1, 'a hook that throws does not fail the write')
  t.equal(onDisk()?.version, again.version)
})
