// The contract every RunLedger implementation passes (the file ledger today; a shared backend later runs the same
// body). What it pins down: inserts that are create-only, updates that are compare-and-swap on the version the
// caller read and really fail, racing updaters of which exactly one wins each round, a change that declines (null)
// writes nothing, removals, a revision that only grows and that settle() reaches, a change feed in revision order,
// and a reopened ledger that holds what was acknowledged. Disk-full and crash behaviour are backend-specific
// (test/store/run-ledger.test.ts); records kept while a backend cannot write, test/runs/deferred-records.test.ts.
import type { Test } from 'tap'
import type { LedgerChange, RunLedger } from '../../../daemon/store/run-ledger.js'
import type { RunRecord } from '../../../daemon/types.js'

export interface LedgerBackend {
  /** a fresh, empty ledger, and a way to open it again after close() (the same data) */
  open: (t: Test) => Promise<{ ledger: RunLedger, reopen: () => Promise<RunLedger> }>
}

/** A run as the lifecycle writes its intent: armed, one hpc target provisioned. */
export function intentRecord (i: number, over: Partial<RunRecord> = {}): Omit<RunRecord, 'version'> {
  return {
    runId: `ctr${String(i).padStart(11, '0')}`,
    sessionId: '0b7e9a52-1111-4222-8333-444455556666',
    user: 'alice',
    uid: 1001,
    gid: 1001,
    workspace: 'personal',
    launchDir: '/home/alice/project',
    host: 'login1',
    mode: 'arm',
    names: ['TOKEN'],
    targets: { hpc: { state: 'provisioned', attempts: 0, nextAttemptAt: null, lastError: null, refs: [{ name: 'TOKEN', ref: '/runs/x' }], revokedAt: null } },
    state: 'armed',
    env: { NXF_UUID: 'u' },
    createdAt: '2030-01-01T00:00:00.000Z',
    startedAt: null,
    endedAt: null,
    expiresAt: null,
    endReason: null,
    exitCode: null,
    signal: null,
    pid: null,
    pidStart: null,
    slurmJobId: null,
    runName: null,
    historyMark: 0,
    ...over
  } as Omit<RunRecord, 'version'>
}

const codeOf = (r: PromiseSettledResult<unknown>): string | null => r.status === 'rejected' ? (r.reason as { code?: string }).code ?? 'uncoded' : null

export function runLedgerContract (t: Test, backend: LedgerBackend): void {
  t.test('contract: insert is create-only; update is compare-and-swap on the version the caller read', async t => {
    const { ledger } = await backend.open(t)
    const a = await ledger.insert(intentRecord(1))
    t.equal(a.version, 1)
    await t.rejects(ledger.insert(intentRecord(1)), { code: 'NFS_ERR_CONFLICT' }, 'an id is used once')
    const b = await ledger.update(a.runId, 1, r => ({ ...r, state: 'running', startedAt: '2030-01-01T00:01:00.000Z' }))
    t.equal(b.version, 2)
    await t.rejects(ledger.update(a.runId, 1, r => ({ ...r, state: 'failed' })), { code: 'NFS_ERR_CONFLICT' }, 'a stale version fails')
    t.equal(ledger.get(a.runId)?.state, 'running', 'and changes nothing')
    const same = await ledger.update(a.runId, 2, () => null)
    t.equal(same.version, 2, 'a change that declines writes nothing')
    await t.rejects(ledger.update('nosuchrun00000', 1, r => r), { code: 'NFS_ERR_RUN_NOT_FOUND' })
    const c = await ledger.update(a.runId, 2, r => ({ ...r, version: 999, runId: 'forged', state: 'completed' }))
    t.equal(c.runId, a.runId, 'a change cannot move a record')
    t.equal(c.version, 3, 'nor pick its version')
  })

  t.test('contract: an insert with liveLimit counts the uid\'s live runs (liveRunsPerUser), not others\' nor ended ones', async t => {
    const { ledger } = await backend.open(t)
    const first = await ledger.insert(intentRecord(600), { liveLimit: 2 })
    await ledger.insert(intentRecord(601, { uid: 1002, user: 'bob' }), { liveLimit: 1 })
    await ledger.insert(intentRecord(602), { liveLimit: 2 })
    await t.rejects(ledger.insert(intentRecord(603), { liveLimit: 2 }), { code: 'NFS_ERR_LIMIT' }, 'a third live run of the uid is refused')
    t.equal(ledger.get(intentRecord(603).runId), undefined, 'and not written')
    await ledger.update(first.runId, 1, r => ({ ...r, state: 'completed', endedAt: '2030-01-01T01:00:00.000Z' }))
    t.equal((await ledger.insert(intentRecord(603), { liveLimit: 2 })).version, 1, 'an ended run frees its slot')
    t.equal((await ledger.insert(intentRecord(604))).version, 1, 'an insert without a limit (an admin\'s) is not refused')
  })

  t.test('contract: racing updaters of one run: exactly one wins each round, none is lost when retried', async t => {
    const { ledger } = await backend.open(t)
    const run = await ledger.insert(intentRecord(2))
    for (let round = 0; round < 5; round++) {
      const v = ledger.get(run.runId)!.version
      const tries = await Promise.allSettled(['completed', 'failed', 'killed'].map(async state =>
        await ledger.update(run.runId, v, r => ({ ...r, endReason: `${state}-${round}` }))))
      t.same(tries.map(codeOf).sort(), [null, 'NFS_ERR_CONFLICT', 'NFS_ERR_CONFLICT'].sort(), `round ${round}`)
    }
    // Each updater retries on a conflict with a fresh read, as runs/transition.ts does: all ten land.
    const retrying = async (i: number): Promise<void> => {
      for (;;) {
        await ledger.settle()
        const cur = ledger.get(run.runId)!
        try {
          await ledger.update(run.runId, cur.version, r => ({ ...r, names: [...r.names, `N_${i}`] }))
          return
        } catch (err) {
          if ((err as { code?: string }).code !== 'NFS_ERR_CONFLICT') throw err
        }
      }
    }
    await Promise.all(Array.from({ length: 10 }, async (_, i) => await retrying(i)))
    t.equal(ledger.get(run.runId)!.names.length, 11, 'every retried change is there')
  })

  t.test('contract: revision, settle and the change feed', async t => {
    const { ledger } = await backend.open(t)
    const seen: LedgerChange[] = []
    const stop = ledger.onChange(c => { seen.push(c) })
    const r0 = ledger.revision
    const a = await ledger.insert(intentRecord(3))
    await ledger.insert(intentRecord(4))
    await ledger.update(a.runId, 1, r => ({ ...r, state: 'running' }))
    await t.rejects(ledger.update(a.runId, 1, r => r), { code: 'NFS_ERR_CONFLICT' })
    await ledger.update(a.runId, 2, () => null)
    t.equal(await ledger.remove([intentRecord(4).runId, 'unknown0000000']), 1)
    stop()
    await ledger.insert(intentRecord(5))
    t.ok(ledger.revision > r0)
    t.ok(await ledger.settle() >= ledger.revision)
    t.same(seen.map(c => `${c.op} ${c.runId}@${c.version}`), [
      `put ${a.runId}@1`, `put ${intentRecord(4).runId}@1`, `put ${a.runId}@2`, `delete ${intentRecord(4).runId}@1`
    ], 'one change per visible write; refused and declined writes are silent; nothing after unsubscribe')
    t.same(seen.map(c => [c.previous?.version ?? null, c.previous?.state ?? null, c.run?.version ?? null, c.run?.state ?? null]), [
      [null, null, 1, 'armed'], [null, null, 1, 'armed'], [1, 'armed', 2, 'running'], [1, 'armed', null, null]
    ], 'each change carries the record before and after it (what the event bus derives events from)')
    const revs = seen.map(c => c.revision)
    t.same(revs, [...revs].sort((x, y) => x - y), 'in revision order (one write\'s changes may share its revision)')
  })

  t.test('contract: a reopened ledger holds every acknowledged write', async t => {
    const { ledger, reopen } = await backend.open(t)
    await Promise.all(Array.from({ length: 12 }, async (_, i) => await ledger.insert(intentRecord(100 + i))))
    await ledger.update(intentRecord(100).runId, 1, r => ({ ...r, state: 'completed', endReason: 'history OK' }))
    await ledger.remove([intentRecord(101).runId])
    await ledger.close()
    const again = await reopen()
    t.teardown(async () => { await again.close() })
    t.equal(again.all().length, 11)
    t.same({ ...again.get(intentRecord(100).runId) }, { ...intentRecord(100), state: 'completed', endReason: 'history OK', version: 2 })
    t.equal(again.get(intentRecord(101).runId), undefined)
  })
}
