import t from 'tap'
import { execFileSync } from 'node:child_process'
import { chmodSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openAuditLog } from '../../daemon/store/audit-log.js'
import type { AuditEntry } from '../../daemon/store/audit-log.js'
import { SecretValue } from '../../daemon/secret-value.js'
import { tempDir, tinyTmpfs } from './helpers.js'
import { fillDisk } from '../helpers/fill-disk.js'
import { whyNotRoot } from '../helpers/requires.js'

const CANARY = 'CANARY-audit-0b7e'

t.test('JSON lines with at, 0600, known fields only, never a value', async t => {
  const dir = tempDir(t)
  const dirMode = statSync(dir).mode
  const path = join(dir, 'audit.log')
  const log = await openAuditLog(path, { now: () => new Date('2030-01-02T03:04:05.000Z') })
  t.teardown(async () => { await log.close() })
  await log.append({ action: 'secret.created', actor: 'alice', scope: 'user:alice', name: 'TOKEN', detail: { version: 1 } })
  // Values smuggled in by a cast are dropped, not written.
  const sneaky = { action: 'secret.updated', actor: 'alice', name: 'TOKEN', value: CANARY, detail: { v: new SecretValue(CANARY), n: 2 } }
  await log.append(sneaky as unknown as AuditEntry)
  await log.close()
  t.equal(statSync(path).mode & 0o777, 0o600)
  t.equal(statSync(dir).mode, dirMode)
  const text = readFileSync(path, 'utf8')
  t.notOk(text.includes(CANARY))
  const lines = text.trimEnd().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
  t.same(lines, [
    { at: '2030-01-02T03:04:05.000Z', action: 'secret.created', actor: 'alice', scope: 'user:alice', name: 'TOKEN', detail: { version: 1 } },
    { at: '2030-01-02T03:04:05.000Z', action: 'secret.updated', actor: 'alice', name: 'TOKEN', detail: { n: 2 } }
  ])
  await t.rejects(log.append({ action: 'x', actor: 'y' }), { code: 'NFS_ERR_STORAGE' }, 'closed')
})

t.test('appends to an existing log, narrows a wide mode, keeps every line under concurrency', async t => {
  const path = join(tempDir(t), 'audit.log')
  writeFileSync(path, '{"at":"old","action":"a","actor":"b"}\n')
  chmodSync(path, 0o644)
  const log = await openAuditLog(path)
  t.teardown(async () => { await log.close() })
  t.equal(statSync(path).mode & 0o777, 0o600)
  await Promise.all(Array.from({ length: 100 }, async (_, i) => { await log.append({ action: 'run.armed', actor: 'alice', runId: `r${i}` }) }))
  const lines = readFileSync(path, 'utf8').trimEnd().split('\n').map(l => JSON.parse(l) as { runId?: string })
  t.equal(lines.length, 101)
  t.same(lines.slice(1).map(l => l.runId), Array.from({ length: 100 }, (_, i) => `r${i}`), 'in call order')
})

t.test('a symlink or a FIFO in place of the log is refused', async t => {
  const dir = tempDir(t)
  const victim = join(dir, 'victim')
  writeFileSync(victim, 'keep')
  symlinkSync(victim, join(dir, 'audit.log'))
  await t.rejects(openAuditLog(join(dir, 'audit.log')), { code: 'NFS_ERR_STORAGE' })
  t.equal(readFileSync(victim, 'utf8'), 'keep')
  execFileSync('mkfifo', [join(dir, 'fifo.log')])
  await t.rejects(openAuditLog(join(dir, 'fifo.log')), { code: 'NFS_ERR_STORAGE' })
})

t.test('a full disk: the line that does not fit is refused and cut off, never left half written', { skip: whyNotRoot() }, async t => { // a tmpfs mount
  const dir = tinyTmpfs(t, '64k')
  const path = join(dir, 'audit.log')
  const log = await openAuditLog(path)
  t.teardown(async () => { await log.close() })
  const entry = (i: number): AuditEntry => ({ action: 'run.revoke', actor: 'nf-secretsd', runId: `run-${i}`, detail: { pad: 'x'.repeat(100) } })
  await log.append(entry(0))
  const filler = fillDisk(dir)
  // The log's own last page still has room: append until a line no longer fits.
  let refused = -1
  for (let i = 1; i < 100 && refused < 0; i++) {
    await log.append(entry(i)).catch((err: { code?: string }) => { t.equal(err.code, 'NFS_ERR_STORAGE'); refused = i })
  }
  t.ok(refused > 1, `lines fitted in the log's last page, then line ${refused} was refused`)
  const parse = (): Array<{ runId: string }> => readFileSync(path, 'utf8').split('\n').filter(l => l !== '').map(l => JSON.parse(l) as { runId: string })
  t.equal(parse().length, refused, 'every line on disk is whole, the refused one absent')
  rmSync(filler)
  await log.append(entry(refused))
  t.same(parse().map(l => l.runId), Array.from({ length: refused + 1 }, (_, i) => `run-${i}`), 'the retry appends it whole, in order')
})

t.test('appendOrKeep on a full disk keeps the line; later appends write the kept lines first, in call order', { skip: whyNotRoot() }, async t => { // a tmpfs mount
  const dir = tinyTmpfs(t, '64k')
  const path = join(dir, 'audit.log')
  const log = await openAuditLog(path)
  t.teardown(async () => { await log.close() })
  const entry = (id: string): AuditEntry => ({ action: 'run.revoke', actor: 'nf-secretsd', runId: id, detail: { pad: 'x'.repeat(100) } })
  await log.append(entry('first'))
  const filler = fillDisk(dir)
  // Fill the log's own last page too, so that the next line cannot fit.
  for (let i = 0; i < 100 && await log.appendOrKeep(entry(`fill-${i}`)); i++);
  t.equal(log.kept(), 1, 'the line that did not fit is kept, not refused')
  const onDisk = (): string[] => readFileSync(path, 'utf8').split('\n').filter(l => l !== '').map(l => (JSON.parse(l) as { runId: string }).runId)
  const before = onDisk()
  t.equal(await log.appendOrKeep(entry('kept-2')), false, 'a second one waits behind it')
  await t.rejects(log.append(entry('plain')), { code: 'NFS_ERR_STORAGE' }, 'a plain append still fails while the disk is full')
  await t.rejects(log.flushKept(), { code: 'NFS_ERR_STORAGE' })
  t.same(onDisk(), before, 'nothing half written meanwhile')
  rmSync(filler)
  await log.append(entry('after'))
  t.equal(log.kept(), 0)
  const lines = onDisk()
  t.same(lines.slice(before.length), [`fill-${before.length - 1}`, 'kept-2', 'after'], 'kept lines first, in order, then the new one')
})

t.test('appendUnsynced: the line is written at once and in call order; sync() and close() leave it on disk', async t => {
  const path = join(tempDir(t), 'audit.log')
  const log = await openAuditLog(path)
  t.teardown(async () => { await log.close() })
  await log.sync()
  await log.appendUnsynced({ action: 'run.provision', actor: 'alice', runId: 'R1' })
  t.match(readFileSync(path, 'utf8'), /"runId":"R1"/, 'written (not yet fsync\'d) when it resolves')
  await Promise.all([log.sync(), log.sync(), log.append({ action: 'secret.created', actor: 'alice', name: 'A' })])
  await log.appendUnsynced({ action: 'run.provision', actor: 'alice', runId: 'R2' })
  await log.close()
  const actions = readFileSync(path, 'utf8').trimEnd().split('\n').map(l => (JSON.parse(l) as { runId?: string, name?: string }))
  t.same(actions.map(a => a.runId ?? a.name), ['R1', 'A', 'R2'])
  await t.resolves(log.sync(), 'nothing left unsynced after close')
  await t.rejects(log.appendUnsynced({ action: 'x', actor: 'y' }), { code: 'NFS_ERR_STORAGE' }, 'closed')
})
