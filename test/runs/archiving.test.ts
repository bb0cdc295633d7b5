// The monitor's archiving step (runs/archiving.ts) over a real file ledger: which runs move and when, a broken
// archive stops it once (the runs stay hot), and the hpc sweep's users include the archive's once it is read.
import t, { type Test } from 'tap'
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import type { Logger } from '../../daemon/logger.js'
import { Archiving, ARCHIVE_AFTER_MS, knownRunUsers, settledAt } from '../../daemon/runs/archiving.js'
import { openRunLedger, type RunLedger } from '../../daemon/store/run-ledger.js'
import type { RunRecord } from '../../daemon/types.js'
import { tempDir, tinyTmpfs } from '../store/helpers.js'
import { fillDisk } from '../helpers/fill-disk.js'
import { whyNotRoot } from '../helpers/requires.js'
import { intentRecord } from '../store/contract/run-ledger-contract.js'

const NOW = new Date('2030-01-02T12:00:00Z')
const ago = (ms: number): string => new Date(NOW.getTime() - ms).toISOString()

function ended (i: number, revokedMsAgo: number, over: Partial<RunRecord> = {}): Omit<RunRecord, 'version'> {
  const r = intentRecord(i, over)
  return { ...r, state: 'completed', endedAt: ago(revokedMsAgo + 1000), targets: { hpc: { ...r.targets.hpc!, state: 'revoked', revokedAt: ago(revokedMsAgo) } } }
}

async function ledgerOf (t: Test, runs: Array<Omit<RunRecord, 'version'>>): Promise<{ dir: string, ledger: RunLedger }> {
  const dir = tempDir(t)
  const ledger = await openRunLedger(join(dir, 'runs.json'))
  t.teardown(async () => { await ledger.close() })
  for (const r of runs) await ledger.insert(r)
  return { dir, ledger }
}

function logger (): { log: Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const log = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>) } })
  return { log, lines }
}

t.test('settledAt: the later of the end and the last revoke', async t => {
  t.equal(settledAt({ ...ended(1, 5000), version: 1 }), NOW.getTime() - 5000)
  t.equal(settledAt({ ...ended(1, 5000), endedAt: ago(1000), version: 1 }), NOW.getTime() - 1000)
})

t.test('a pass moves runs settled for ARCHIVE_AFTER_MS, not live ones, not those settled a moment ago, not others\' runs', async t => {
  const old = ended(1, ARCHIVE_AFTER_MS + 1)
  const recent = ended(2, ARCHIVE_AFTER_MS - 1000)
  const live = intentRecord(3)
  const other = ended(4, ARCHIVE_AFTER_MS + 1)
  const unrevoked = { ...ended(5, ARCHIVE_AFTER_MS + 1) }
  unrevoked.targets = { hpc: { ...unrevoked.targets.hpc!, state: 'revoke_failed', revokedAt: null } }
  const { ledger } = await ledgerOf(t, [old, recent, live, other, unrevoked])
  await new Archiving(ledger, logger().log).pass(NOW, 30, r => r.runId !== other.runId)
  t.same(ledger.all().map(r => r.runId), [recent, live, other, unrevoked].map(r => r.runId))
  t.same((await ledger.archive!.list()).map(r => r.runId), [old.runId])
})

t.test('a broken archive is said once and stops archiving; the runs stay in runs.json', async t => {
  const { dir, ledger } = await ledgerOf(t, [ended(1, ARCHIVE_AFTER_MS + 1)])
  mkdirSync(join(dir, 'runs-archive'), { mode: 0o755 })
  const { log, lines } = logger()
  const archiving = new Archiving(ledger, log)
  await archiving.pass(NOW, 30, () => true)
  await archiving.pass(NOW, 30, () => true)
  t.equal(lines.filter(l => l.level === 50).length, 1, 'one error')
  t.equal((lines.find(l => l.level === 50)?.err as { code?: string } | undefined)?.code, 'NFS_ERR_STORE_UNREADABLE')
  t.equal(ledger.all().length, 1)
})

t.test('retention: an old segment is dropped by the first pass', async t => {
  const { dir, ledger } = await ledgerOf(t, [])
  mkdirSync(join(dir, 'runs-archive'), { mode: 0o700 })
  writeFileSync(join(dir, 'runs-archive', '2029-11-01.jsonl'), '', { mode: 0o600 })
  writeFileSync(join(dir, 'runs-archive', '2030-01-01.jsonl'), '', { mode: 0o600 })
  await new Archiving(ledger, logger().log).pass(NOW, 30, () => true)
  t.same(readdirSync(join(dir, 'runs-archive')), ['2030-01-01.jsonl'])
})

t.test('the hpc sweep\'s users: the hot ledger\'s, and the archive\'s once it has been read', async t => {
  const { ledger } = await ledgerOf(t, [ended(1, ARCHIVE_AFTER_MS + 1, { user: 'bob', uid: 1002 }), intentRecord(2)])
  await ledger.archive!.move([intentRecord(1).runId], NOW)
  const users = knownRunUsers(ledger, logger().log)
  t.same([...users()], ['alice'], 'the first call does not wait for the archive')
  await ledger.archive!.summaries()
  await new Promise(resolve => setImmediate(resolve))
  t.same([...users()].sort(), ['alice', 'bob'])
})

t.test('an archive that cannot be written (a full disk) is said once, tried again each pass, and said again when it works', { skip: whyNotRoot() }, async t => {
  const full = tinyTmpfs(t, '64k')
  const dir = tempDir(t)
  const ledger = await openRunLedger(join(dir, 'runs.json'), { archiveDir: join(full, 'runs-archive') })
  t.teardown(async () => { await ledger.close() })
  await ledger.insert(ended(1, ARCHIVE_AFTER_MS + 1))
  const filler = fillDisk(full)
  const { log, lines } = logger()
  const archiving = new Archiving(ledger, log)
  await archiving.pass(NOW, 30, () => true)
  await archiving.pass(NOW, 30, () => true)
  t.equal(lines.filter(l => l.level === 40).length, 1, 'one warning')
  t.equal(ledger.all().length, 1, 'the run stays hot')
  rmSync(filler)
  await archiving.pass(NOW, 30, () => true)
  t.equal(ledger.all().length, 0, 'moved once there is room')
  t.ok(lines.some(l => l.msg === 'run archive written again'))
})
