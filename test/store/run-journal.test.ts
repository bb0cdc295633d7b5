// The file ledger's journal (store/run-journal.ts) on real files: a change is one line and one fdatasync, runs.json
// is folded when the ledger goes quiet and at a stop, a real crash (SIGKILL of a process mid-burst) loses nothing
// acknowledged, a torn last line is cut off, damage before the last line stops the start and is left as it was, a
// full disk leaves no partial line, and the journal is the daemon's own 0600 file, never a symlink followed.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { appendFileSync, chmodSync, copyFileSync, existsSync, readFileSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openRunLedger, readLedgerRuns } from '../../daemon/store/run-ledger.js'
import { journalLine, parseJournal } from '../../daemon/store/run-journal.js'
import { ensureBuilt, ROOT } from '../helpers/daemon.js'
import { intentRecord } from './contract/run-ledger-contract.js'
import { tempDir, tinyTmpfs } from './helpers.js'
import { whyNotRoot } from '../helpers/requires.js'

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

t.test('a change is a journal line; runs.json is written once the ledger is quiet, and at a stop', async t => {
  const dir = tempDir(t)
  const path = join(dir, 'runs.json')
  const ledger = await openRunLedger(path)
  t.teardown(async () => { await ledger.close() })
  t.equal(statSync(path).mode & 0o777, 0o600, 'a first start writes the empty runs.json, 0600')
  t.equal(statSync(join(dir, 'runs.journal')).mode & 0o777, 0o600, 'and the journal, 0600')
  const a = await ledger.insert(intentRecord(1))
  await ledger.update(a.runId, a.version, r => ({ ...r, state: 'running' }))
  // Both changes are on disk now, each one line of the journal. A machine that stalls 250 ms folds them into runs.json
  // meanwhile: the lines the snapshot does not hold yet (seq above its journalSeq) are then the ones left to see, so the
  // check is made either way. Read snapshot then journal, again if a fold renamed runs.json in between.
  let view: { snapSeq: number, lines: Array<{ seq: number, put: Array<[string, number]> }> }
  for (;;) {
    const ino = statSync(path).ino
    const snapSeq = (JSON.parse(readFileSync(path, 'utf8')) as { journalSeq?: number }).journalSeq ?? 0
    const changes = parseJournal(readFileSync(join(dir, 'runs.journal')), 'runs.journal').changes
    if (statSync(path).ino !== ino) continue
    view = { snapSeq, lines: changes.filter(c => c.seq > snapSeq).map(c => ({ seq: c.seq, put: c.put.map(r => [r.runId, r.version] as [string, number]) })) }
    break
  }
  const expected = [{ seq: 1, put: [[a.runId, 1]] }, { seq: 2, put: [[a.runId, 2]] }].filter(c => c.seq > view.snapSeq)
  t.same(view.lines, expected, `one line a change (${view.snapSeq} of the 2 already folded)`)
  t.equal(view.snapSeq + view.lines.length, 2, 'the two changes, each counted once: folded or on its line')
  t.same((await readLedgerRuns(path)).map(r => [r.runId, r.state]), [[a.runId, 'running']], 'what reached the disk')
  for (let i = 0; i < 100 && statSync(join(dir, 'runs.journal')).size > 0; i++) await sleep(50)
  t.equal(statSync(join(dir, 'runs.journal')).size, 0, 'folded once quiet: the journal is empty')
  const snap = JSON.parse(readFileSync(path, 'utf8')) as { runs: Array<{ runId: string, state: string }>, journalSeq: number }
  t.same([snap.runs.map(r => [r.runId, r.state]), snap.journalSeq], [[[a.runId, 'running']], 2], 'runs.json holds it, and the last change folded')
  await ledger.remove([a.runId])
  await ledger.close()
  t.same([JSON.parse(readFileSync(path, 'utf8')).runs, statSync(join(dir, 'runs.journal')).size], [[], 0], 'a stop folds what is left')
})

t.test('SIGKILL in a burst of changes: a reopen holds every change acknowledged, the snapshot and journal together', async t => {
  ensureBuilt()
  const dir = tempDir(t)
  const path = join(dir, 'runs.json')
  // A real process: 40 inserts and updates back to back (never quiet long enough to fold), each acknowledged change
  // reported on stdout before the next, then SIGKILL of itself without a stop.
  const script = `
    const { openRunLedger } = await import(${JSON.stringify(join(ROOT, 'dist', 'daemon', 'store', 'run-ledger.js'))})
    const l = await openRunLedger(${JSON.stringify(path)})
    for (let i = 0; i < 20; i++) {
      const r = await l.insert({ ...${JSON.stringify(intentRecord(0))}, runId: 'crash' + String(i).padStart(9, '0') })
      await l.update(r.runId, 1, x => ({ ...x, state: 'running' }))
      process.stdout.write(r.runId + '\\n')
    }
    process.kill(process.pid, 'SIGKILL')
  `
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  t.equal(r.signal, 'SIGKILL', r.stderr)
  const acked = r.stdout.trim().split('\n')
  t.equal(acked.length, 20)
  t.ok(statSync(join(dir, 'runs.journal')).size > 0, 'the changes were in the journal when it died')
  const again = await openRunLedger(path)
  t.teardown(async () => { await again.close() })
  t.same(again.all().map(x => [x.runId, x.state, x.version]), acked.map(id => [id, 'running', 2]), 'every acknowledged change, once')
  t.equal(statSync(join(dir, 'runs.journal')).size, 0, 'folded at the start')
})

t.test('a torn last line (a crash mid-append) is cut off; the lines before it count', async t => {
  for (const tail of [Buffer.from('0badc0de {"seq":3,"pu'), Buffer.alloc(300), Buffer.from('00000000 {"seq":3,"put":[],"del":[]}\n')]) {
    const dir = tempDir(t)
    const path = join(dir, 'runs.json')
    const first = await openRunLedger(path)
    const a = await first.insert(intentRecord(1))
    await first.update(a.runId, 1, r => ({ ...r, state: 'running' }))
    const journal = join(dir, 'runs.journal')
    // As the process would leave them at a crash: copied before the stop folds them.
    copyFileSync(journal, `${journal}.crash`)
    copyFileSync(path, `${path}.crash`)
    await first.close()
    copyFileSync(`${journal}.crash`, journal)
    copyFileSync(`${path}.crash`, path)
    const good = statSync(journal).size
    appendFileSync(journal, tail)
    const again = await openRunLedger(path)
    t.same(again.all().map(r => [r.runId, r.state]), [[a.runId, 'running']], `torn ${JSON.stringify(tail.subarray(0, 12).toString('latin1'))}: what was acknowledged`)
    t.ok(statSync(journal).size === 0 || statSync(journal).size === good, 'the torn bytes are gone (cut, then folded)')
    await again.close()
  }
})

t.test('damage before the last line stops the open with NFS_ERR_STORE_UNREADABLE and leaves both files as they were', async t => {
  const dir = tempDir(t)
  const path = join(dir, 'runs.json')
  writeFileSync(path, '{"format":1,"runs":[]}\n', { mode: 0o600 })
  const put = (seq: number): Buffer => journalLine({ seq, put: [{ ...intentRecord(seq), version: 1 }], del: [] })
  const one = put(1)
  one[20] = one[20]! ^ 0x01 // one bit flipped inside the JSON: its sum no longer matches
  const journal = join(dir, 'runs.journal')
  writeFileSync(journal, Buffer.concat([one, put(2)]), { mode: 0o600 })
  const before = [readFileSync(path), readFileSync(journal)]
  await t.rejects(openRunLedger(path), { code: 'NFS_ERR_STORE_UNREADABLE' })
  t.same([readFileSync(path), readFileSync(journal)], before, 'runs.json and runs.journal byte for byte')
  writeFileSync(journal, Buffer.concat([put(2), put(1)]), { mode: 0o600 })
  await t.rejects(openRunLedger(path), { code: 'NFS_ERR_STORE_UNREADABLE' }, 'seqs that go back are damage too')
})

t.test('lines at or below the snapshot\'s journalSeq (a crash between a fold and the emptying) are not applied again', async t => {
  const dir = tempDir(t)
  const path = join(dir, 'runs.json')
  const b = { ...intentRecord(2), version: 3, state: 'completed' as const }
  writeFileSync(path, `${JSON.stringify({ format: 1, runs: [b], journalSeq: 2 })}\n`, { mode: 0o600 })
  // seq 1 and 2 are in the snapshot already (b at version 3); seq 3 is not.
  writeFileSync(join(dir, 'runs.journal'), Buffer.concat([
    journalLine({ seq: 1, put: [{ ...intentRecord(2), version: 2, state: 'running' }], del: [] }),
    journalLine({ seq: 2, put: [b], del: [] }),
    journalLine({ seq: 3, put: [{ ...intentRecord(3), version: 1 }], del: [] })
  ]), { mode: 0o600 })
  const ledger = await openRunLedger(path)
  t.teardown(async () => { await ledger.close() })
  t.same(ledger.all().map(r => [r.runId, r.version]), [[b.runId, 3], [intentRecord(3).runId, 1]])
})

t.test('attack: a symlink or another owner\'s or a wider-mode file at runs.journal is refused, never followed or used', async t => {
  const dir = tempDir(t)
  const path = join(dir, 'runs.json')
  const victim = join(tempDir(t), 'victim')
  writeFileSync(victim, 'not yours\n')
  symlinkSync(victim, join(dir, 'runs.journal'))
  await t.rejects(openRunLedger(path), { code: 'NFS_ERR_STORE_UNREADABLE' }, 'a symlink')
  t.equal(readFileSync(victim, 'utf8'), 'not yours\n', 'its target untouched')
  const dir2 = tempDir(t)
  writeFileSync(join(dir2, 'runs.journal'), '', { mode: 0o644 })
  chmodSync(join(dir2, 'runs.journal'), 0o644)
  await t.rejects(openRunLedger(join(dir2, 'runs.json')), { code: 'NFS_ERR_STORE_UNREADABLE' }, 'a 0644 journal')
  const dir3 = tempDir(t)
  writeFileSync(join(dir3, 'runs.journal'), '', { mode: 0o600 })
  spawnSync('chown', ['1001', join(dir3, 'runs.journal')])
  if (statSync(join(dir3, 'runs.journal')).uid !== process.getuid!()) {
    await t.rejects(openRunLedger(join(dir3, 'runs.json')), { code: 'NFS_ERR_STORE_UNREADABLE' }, 'another user\'s journal')
  }
  t.notOk(existsSync(join(dir2, 'runs.json')), 'nothing written beside a refused journal')
})

t.test('a full disk: the change is refused (NFS_ERR_STORAGE), no partial line stays, memory and disk as before', { skip: whyNotRoot() }, async t => { // a tmpfs mount
  const dir = tinyTmpfs(t, '256k')
  const path = join(dir, 'runs.json')
  const ledger = await openRunLedger(path, { archiveDir: null })
  t.teardown(async () => { await ledger.close() })
  const kept = await ledger.insert(intentRecord(1))
  // Fill what is left, so that the next line cannot be written.
  const filler = join(dir, 'filler')
  try { writeFileSync(filler, Buffer.alloc(512 * 1024)) } catch {}
  const size = statSync(join(dir, 'runs.journal')).size
  const big = intentRecord(2, { names: Array.from({ length: 400 }, (_, i) => `NAME_${i}`) })
  await t.rejects(ledger.insert(big), { code: 'NFS_ERR_STORAGE' })
  t.equal(statSync(join(dir, 'runs.journal')).size, size, 'the journal is as long as before')
  t.same(ledger.all().map(r => r.runId), [kept.runId], 'memory as before')
  truncateSync(filler, 0)
  const later = await ledger.insert(big)
  t.same((await readLedgerRuns(path)).map(r => r.runId), [kept.runId, later.runId], 'once there is room the next change is written')
})
