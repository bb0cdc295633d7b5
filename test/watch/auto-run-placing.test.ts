// An arm's history mark is recorded with its first placement (create-run.ts, issue 18). A start seen in its launch
// dir meanwhile is decided once the arm is placed: the armed run claims the first line at or after its mark, as the
// monitor gives it that line (observe.ts matchHistory), and no auto-run is made beside it for the same line.
import t from 'tap'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { EventBus } from '../../daemon/events.js'
import { parseHistoryLine } from '../../daemon/nextflow/history.js'
import { AutoRuns, type AutoRunDecision } from '../../daemon/watch/auto-run.js'
import type { RunRecord } from '../../daemon/types.js'

t.test('a start seen while an arm of its dir is being placed goes to that arm once it has its mark', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-autorun-placing-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const launchDir = join(dir, 'proj')
  mkdirSync(join(launchDir, '.nextflow'), { recursive: true, mode: 0o700 })
  const line = ['2026-12-03 11:00:00', '-', 'brave_turing', '-', 'abc123', '1b4e28ba-2fa1-11d2-883f-0016d3cca427', 'nextflow run main.nf'].join('\t')
  writeFileSync(join(launchDir, '.nextflow', 'history'), line + '\n', { mode: 0o600 })
  const seen = { index: 0, ...parseHistoryLine(line)! }

  // The arm: its intent is in the ledger, its target still being placed, no mark yet.
  const arm = { runId: 'Rplacing000001', state: 'armed', launchDir, sessionId: 'ffffffff-0000-4000-8000-000000000000', runName: null, historyMark: null, targets: { memory: { state: 'provisioning' } } } as unknown as RunRecord
  const created: string[] = []
  const decisions: AutoRunDecision[] = []
  const auto = new AutoRuns({
    runs: {
      live: (d?: string) => d === undefined || d === launchDir ? [arm] : [],
      create: async () => { created.push('auto'); return { runId: 'Rauto000000001', sessionId: seen.sessionId, env: {}, secrets: [], targets: ['memory'] } },
      run: () => undefined,
      settle: async () => 0
    } as never,
    monitor: { checkRun: async () => {} } as never,
    users: { userByUid: () => ({ name: 'root' }), callerForUid: () => ({ user: 'root', uid: 0, gid: 0, pid: 0, groups: ['root'], gids: [0], isAdmin: true }) } as never,
    events: new EventBus(),
    logger: pino({ level: 'silent' }),
    clock: () => new Date(),
    onAutoRun: d => decisions.push(d)
  })
  const decided = auto.started({ root: dir, workspace: null, targets: ['memory'], onlyUid: null }, launchDir, seen, { trusted: true, uid: process.getuid!(), mtimeMs: Date.now() })
  // The placement is recorded a little later, with the mark read beside the intent: the line is the first after it.
  await new Promise(resolve => setTimeout(resolve, 60))
  t.same(decisions, [], 'not decided while the arm is being placed')
  Object.assign(arm, { historyMark: 0, targets: { memory: { state: 'provisioned' } } })
  t.equal(await decided, null, 'no auto-run')
  t.same(created, [], 'nothing was provisioned for the start')
  t.same(decisions.map(d => [d.outcome, d.runId]), [['claimed', arm.runId]], 'the arm claims it')
})
