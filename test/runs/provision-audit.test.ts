// A run's audit line shares the journal commit of its last `provisioned` record (issue 18): its fsync goes out from
// inside that ledger write, beside the ledger's own data fsync, and the answer still waits for it.
import t from 'tap'
import type { Test } from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { createMemoryTarget } from '../../adapters/memory.js'
import type { Target } from '../../adapters/types.js'
import { intentRecord, provisionRun } from '../../daemon/runs/provision.js'
import { SecretValue } from '../../daemon/secret-value.js'
import { openAuditLog, type AuditLog } from '../../daemon/store/audit-log.js'
import { openRunLedger, type RunLedger } from '../../daemon/store/run-ledger.js'
import type { TargetName } from '../../daemon/types.js'
import { caller } from '../helpers/runs.js'

async function setup (t: Test): Promise<{ dir: string, ledger: RunLedger, audit: AuditLog }> {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-prov-audit-'))
  const ledger = await openRunLedger(join(dir, 'runs.json'))
  const audit = await openAuditLog(join(dir, 'audit.log'))
  t.teardown(async () => {
    await ledger.close()
    await audit.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return { dir, ledger, audit }
}

function newRun (runId: string, targets: TargetName[]): ReturnType<typeof intentRecord> {
  return intentRecord({
    runId,
    sessionId: '6f1d2c3b-0000-4000-8000-00000000abcd',
    caller: caller(),
    workspace: 'personal',
    host: 'vm',
    req: { mode: 'arm', launchDir: '/work/l' },
    names: ['TOKEN'],
    targets,
    now: new Date('2026-12-02T17:00:00Z'),
    ttlSeconds: 900,
    pid: null,
    pidStart: null,
    historyMark: 0
  })
}

t.test('the audit fsync is issued inside the last provisioned write, and the answer waits for it', async t => {
  const { dir, ledger, audit } = await setup(t)
  const seen: string[] = []
  let lastWriteInFlight = false
  let synced = 0
  let release: () => void = () => {}
  const held = new Promise<void>(resolve => { release = resolve })
  const spyAudit: AuditLog = {
    ...audit,
    append: async e => { seen.push('append'); await audit.append(e) },
    appendUnsynced: async e => { seen.push('appendUnsynced'); await audit.appendUnsynced(e) },
    // The first sync (the one the ledger issues) is held, to show that the answer waits for it.
    sync: async () => {
      seen.push(lastWriteInFlight ? 'sync inside the provisioned write' : 'sync')
      if (synced++ === 0) await held
      await audit.sync()
    },
    appendOrKeep: async e => await audit.appendOrKeep(e),
    kept: () => audit.kept(),
    flushKept: async () => { await audit.flushKept() },
    close: async () => { await audit.close() }
  }
  const spyLedger: RunLedger = {
    ...ledger,
    get revision () { return ledger.revision },
    insert: async r => await ledger.insert(r),
    update: async (id, v, change, opts) => {
      lastWriteInFlight = opts?.syncAlong !== undefined
      try {
        return await ledger.update(id, v, change, opts)
      } finally {
        lastWriteInFlight = false
      }
    }
  }
  const memory = createMemoryTarget()
  const targets = new Map<TargetName, Target>([['memory', memory]])
  let answered = false
  const p = provisionRun({ ledger: spyLedger, audit: spyAudit, targets, log: pino({ level: 'silent' }), undo: async () => {} },
    newRun('R0000000000001', ['memory']), ['memory'], new Map([['TOKEN', new SecretValue('CANARY-prov-audit')]]),
    { action: 'run.provision', actor: 'root', runId: 'R0000000000001' }).then(r => { answered = true; seen.push('answered'); return r })
  for (let i = 0; i < 400 && !seen.includes('sync inside the provisioned write'); i++) await new Promise(resolve => setTimeout(resolve, 5))
  t.ok(seen.includes('sync inside the provisioned write'), 'the audit fsync was issued from inside the provisioned write')
  // No sleep to wait for an answer that must not come: the order of the release and the answer says it.
  t.notOk(answered, 'no answer while the audit line is not on disk')
  seen.push('released')
  release()
  const { run } = await p
  t.ok(seen.indexOf('answered') > seen.indexOf('released'), 'answered only after the held fsync was let go')
  t.equal(run.targets.memory?.state, 'provisioned')
  t.same(seen.filter(s => s !== 'sync' && s !== 'released' && s !== 'answered'), ['appendUnsynced', 'sync inside the provisioned write'], 'the line written unsynced, its fsync inside the ledger write')
  t.match(readFileSync(join(dir, 'audit.log'), 'utf8'), /"action":"run.provision"/)
  t.notMatch(readFileSync(join(dir, 'audit.log'), 'utf8'), 'CANARY')
})

t.test('a ledger that ignores syncAlong: the line is fsync\'d before the answer all the same', async t => {
  const { dir, ledger, audit } = await setup(t)
  let syncs = 0
  const spyAudit: AuditLog = { ...audit, appendUnsynced: async e => { await audit.appendUnsynced(e) }, sync: async () => { syncs++; await audit.sync() }, append: async e => { await audit.append(e) }, appendOrKeep: async e => await audit.appendOrKeep(e), kept: () => audit.kept(), flushKept: async () => { await audit.flushKept() }, close: async () => { await audit.close() } }
  const deaf: RunLedger = {
    ...ledger,
    get revision () { return ledger.revision },
    insert: async r => await ledger.insert(r),
    update: async (id, v, change, opts) => await ledger.update(id, v, change, { ...opts, syncAlong: undefined })
  }
  const targets = new Map<TargetName, Target>([['memory', createMemoryTarget()]])
  await provisionRun({ ledger: deaf, audit: spyAudit, targets, log: pino({ level: 'silent' }), undo: async () => {} },
    newRun('R0000000000002', ['memory']), ['memory'], new Map([['TOKEN', new SecretValue('v')]]),
    { action: 'run.provision', actor: 'root', runId: 'R0000000000002' })
  t.equal(syncs, 1, 'synced once, after the ledger write')
  t.match(readFileSync(join(dir, 'audit.log'), 'utf8'), /"runId":"R0000000000002"/)
})
