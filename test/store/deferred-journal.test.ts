// The local journal of deferred run records: what is saved comes back after a "restart" (a new journal on the same
// file), the file is 0600 whatever the umask, and a broken journal is refused with a coded error, left as it was.
import t from 'tap'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileJournal } from '../../daemon/store/deferred-journal.js'
import type { RunRecord } from '../../daemon/types.js'
import { intentRecord } from './contract/run-ledger-contract.js'

const rec = (i: number, state: RunRecord['state']): RunRecord => ({ ...intentRecord(i), state, version: 3 })

t.test('saved records come back after a restart; an empty set empties it', async t => {
  const path = join(t.testdir(), 'ledger-journal.json')
  t.same(await fileJournal(path).load(), [], 'no file: nothing kept')
  const old = process.umask(0o022)
  try {
    await fileJournal(path).save([rec(1, 'killed'), rec(2, 'completed')])
  } finally {
    process.umask(old)
  }
  t.equal(statSync(path).mode & 0o777, 0o600)
  t.same((await fileJournal(path).load()).map(r => [r.runId, r.state]), [[rec(1, 'killed').runId, 'killed'], [rec(2, 'completed').runId, 'completed']])
  await fileJournal(path).save([])
  t.same(await fileJournal(path).load(), [])
})

t.test('a broken journal is refused (NFS_ERR_STORE_UNREADABLE) and left as it was', async t => {
  const dir = t.testdir()
  const cases: Array<[string, string]> = [['not-json', '{"format":1,'], ['wrong-format', '{"format":2,"records":[]}'], ['bad-record', '{"format":1,"records":[{"runId":1}]}']]
  for (const [name, text] of cases) {
    const path = join(dir, `${name}.json`)
    writeFileSync(path, text)
    await t.rejects(fileJournal(path).load(), { code: 'NFS_ERR_STORE_UNREADABLE' }, name)
    t.equal(readFileSync(path, 'utf8'), text, `${name}: untouched`)
  }
})
