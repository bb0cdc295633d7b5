import t from 'tap'
import { execFileSync } from 'node:child_process'
import { chmodSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openAuditLog } from '../../daemon/store/audit-log.js'
import type { AuditEntry } from '../../daemon/store/audit-log.js'
import { SecretValue } from '../../daemon/secret-value.js'
import { tempDir } from './helpers.js'

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
