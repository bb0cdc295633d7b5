// The run archive (store/run-archive.ts) under the file ledger, on real files: settled runs leave runs.json for an
// append-only segment (0600 in a 0700 dir), are read back on demand, a torn append is cut off, a broken line is a
// coded error that leaves the file as it was, whole segments are dropped past retention.
import t, { type Test } from 'tap'
import { appendFileSync, chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openRunLedger, type RunLedger } from '../../daemon/store/run-ledger.js'
import { parseSegment } from '../../daemon/store/run-archive.js'
import type { RunRecord } from '../../daemon/types.js'
import { sha256File, tempDir, tinyTmpfs } from './helpers.js'
import { fillDisk } from '../helpers/fill-disk.js'
import { whyNotRoot } from '../helpers/requires.js'
import { intentRecord } from './contract/run-ledger-contract.js'
import { ledgerOnDisk } from '../helpers/ledger-file.js'

const NOW = new Date('2030-01-02T12:00:00Z')
const SEGMENT = '2030-01-02.jsonl'

function settled (i: number): Omit<RunRecord, 'version'> {
  const r = intentRecord(i)
  return { ...r, state: 'killed', endedAt: '2030-01-01T00:00:00.000Z', targets: { hpc: { ...r.targets.hpc!, state: 'revoked', revokedAt: '2030-01-01T00:00:01.000Z' } } }
}

async function ledgerWith (t: Test, live: number, ended: number): Promise<{ dir: string, ledger: RunLedger }> {
  const dir = tempDir(t)
  const ledger = await openRunLedger(join(dir, 'runs.json'))
  t.teardown(async () => { await ledger.close() })
  for (let i = 0; i < live; i++) await ledger.insert(intentRecord(i))
  for (let i = 0; i < ended; i++) await ledger.insert(settled(100 + i))
  return { dir, ledger }
}

const hotIds = (dir: string): string[] => (ledgerOnDisk(dir) as unknown as { runs: RunRecord[] }).runs.map(r => r.runId)

t.test('settled runs move out of runs.json into a 0600 segment and are read back on demand', async t => {
  const { dir, ledger } = await ledgerWith(t, 2, 3)
  const ids = ledger.all().map(r => r.runId)
  t.equal(await ledger.archive!.move(ids, NOW), 3, 'only the settled ones move (a live run is ignored)')
  t.same(hotIds(dir), ids.slice(0, 2), 'runs.json holds the live runs only')
  t.same(ledger.all().map(r => r.runId), ids.slice(0, 2))
  t.equal(ledger.get(ids[2]!), undefined, 'get() is the hot set')
  t.equal(statSync(join(dir, 'runs-archive')).mode & 0o777, 0o700)
  t.equal(statSync(join(dir, 'runs-archive', SEGMENT)).mode & 0o777, 0o600)
  t.same((await ledger.archive!.list()).map(r => r.runId), ids.slice(2))
  t.equal((await ledger.archive!.find(ids[3]!))?.state, 'killed')
  t.equal(await ledger.archive!.find('ctr99999999999'), undefined)
  const counts = await ledger.archive!.summaries()
  t.equal(counts.size, 3)
  // Kept up to date in memory once read: a later move counts without a read of its own.
  await ledger.insert(settled(200))
  await ledger.archive!.move([settled(200).runId], NOW)
  t.equal((await ledger.archive!.summaries()).get(settled(200).runId)?.state, 'killed')
  // Reads close together share one parse (run-archive.ts readAll), but never one from before a move.
  t.equal((await ledger.archive!.list()).length, 4, 'a list right after a move has it')
  await ledger.close()
  const again = await openRunLedger(join(dir, 'runs.json'))
  t.teardown(async () => { await again.close() })
  t.same(again.all().map(r => r.runId), ids.slice(0, 2), 'a restart reads only the hot file')
  t.equal((await again.archive!.list()).length, 4)
})

t.test('a torn append (a crash in the middle of it) is ignored and cut off by the next append', async t => {
  const { dir, ledger } = await ledgerWith(t, 0, 2)
  const [a, b] = ledger.all().map(r => r.runId)
  await ledger.archive!.move([a!], NOW)
  const segment = join(dir, 'runs-archive', SEGMENT)
  appendFileSync(segment, '{"runId":"ctr0000000')
  t.same((await ledger.archive!.list()).map(r => r.runId), [a], 'the torn tail is not read')
  await ledger.archive!.move([b!], NOW)
  t.same((await ledger.archive!.list()).map(r => r.runId), [a, b])
  t.equal(readFileSync(segment, 'utf8').split('\n').length, 3, 'two whole lines, the torn bytes gone')
})

t.test('a run in the archive twice (a move repeated after a crash) is listed and counted once', async t => {
  const { dir, ledger } = await ledgerWith(t, 0, 1)
  const [a] = ledger.all().map(r => r.runId)
  await ledger.archive!.move([a!], NOW)
  const segment = join(dir, 'runs-archive', SEGMENT)
  // What the repeated move appends: the same record once more.
  appendFileSync(segment, readFileSync(segment))
  t.same((await ledger.archive!.list()).map(r => r.runId), [a])
  t.equal((await ledger.archive!.summaries()).size, 1)
})

t.test('a broken line is NFS_ERR_STORE_UNREADABLE naming the segment, and the file is left as it was', async t => {
  const { dir, ledger } = await ledgerWith(t, 0, 2)
  const [a, b] = ledger.all().map(r => r.runId)
  await ledger.archive!.move([a!], NOW)
  const segment = join(dir, 'runs-archive', SEGMENT)
  appendFileSync(segment, 'not a record\n')
  const before = sha256File(segment)
  await t.rejects(ledger.archive!.list(), { code: 'NFS_ERR_STORE_UNREADABLE', message: /2030-01-02\.jsonl.*line 2/ })
  await t.rejects(ledger.archive!.find(a!), { code: 'NFS_ERR_STORE_UNREADABLE' })
  await t.rejects(ledger.archive!.summaries(), { code: 'NFS_ERR_STORE_UNREADABLE' })
  t.equal(sha256File(segment), before)
  t.ok(ledger.get(b!), 'the hot runs are untouched')
})

t.test('a line that is not a settled run is broken too (a live run must never hide in the archive)', async t => {
  const live = JSON.stringify({ ...intentRecord(1), version: 1 })
  t.throws(() => parseSegment(`${live}\n`, 'seg'), { code: 'NFS_ERR_STORE_UNREADABLE' })
  t.same(parseSegment('', 'seg'), [])
  t.same(parseSegment(`${JSON.stringify({ ...settled(1), version: 2 })}\n{"torn`, 'seg').map(r => r.runId), [settled(1).runId])
})

t.test('a dir or segment that is not the daemon\'s own and private is refused, and nothing is written through it', async t => {
  const { dir, ledger } = await ledgerWith(t, 0, 1)
  const [a] = ledger.all().map(r => r.runId)
  mkdirSync(join(dir, 'runs-archive'), { mode: 0o700 })
  const elsewhere = join(tempDir(t), 'victim')
  writeFileSync(elsewhere, 'victim\n')
  symlinkSync(elsewhere, join(dir, 'runs-archive', SEGMENT))
  await t.rejects(ledger.archive!.move([a!], NOW), { code: 'NFS_ERR_STORE_UNREADABLE', message: /symlink/ })
  t.equal(readFileSync(elsewhere, 'utf8'), 'victim\n', 'the symlink was not followed')
  t.same(hotIds(dir), [a], 'the run stays in runs.json')
  chmodSync(join(dir, 'runs-archive'), 0o755)
  await t.rejects(ledger.archive!.list(), { code: 'NFS_ERR_STORE_UNREADABLE', message: /0700/ })
})

t.test('retention drops whole segments once their day is past the horizon', async t => {
  const { dir, ledger } = await ledgerWith(t, 0, 2)
  const [a, b] = ledger.all().map(r => r.runId)
  await ledger.archive!.move([a!], new Date('2030-01-01T23:00:00Z'))
  await ledger.archive!.move([b!], NOW)
  await ledger.archive!.summaries()
  t.equal(await ledger.archive!.prune(new Date('2030-01-01T23:59:59Z')), 0, 'a day not over yet is kept')
  t.equal(await ledger.archive!.prune(new Date('2030-01-02T00:00:00Z')), 1)
  t.same(readdirSync(join(dir, 'runs-archive')), [SEGMENT])
  t.same((await ledger.archive!.list()).map(r => r.runId), [b])
  t.same([...(await ledger.archive!.summaries()).keys()], [b], 'the counts follow')
})

t.test('a hot rewrite that keeps failing (a full disk) does not append the same runs again', { skip: whyNotRoot() }, async t => {
  const hotDir = tinyTmpfs(t, '64k')
  const archiveDir = join(tempDir(t), 'runs-archive')
  const ledger = await openRunLedger(join(hotDir, 'runs.json'), { archiveDir })
  t.teardown(async () => { await ledger.close() })
  await ledger.insert(settled(1))
  const filler = fillDisk(hotDir)
  await t.rejects(ledger.archive!.move([settled(1).runId], NOW), { code: 'NFS_ERR_STORAGE' })
  await t.rejects(ledger.archive!.move([settled(1).runId], NOW), { code: 'NFS_ERR_STORAGE' })
  const lines = (): number => readFileSync(join(archiveDir, SEGMENT), 'utf8').split('\n').filter(l => l !== '').length
  t.equal(lines(), 1, 'in the archive once, and still hot')
  t.ok(ledger.get(settled(1).runId))
  rmSync(filler)
  t.equal(await ledger.archive!.move([settled(1).runId], NOW), 1)
  t.equal(lines(), 1)
  t.equal(ledger.get(settled(1).runId), undefined)
})
