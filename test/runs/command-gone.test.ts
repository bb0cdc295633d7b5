// When an owner's revoke waits for the launching node's mark that the command is gone (runs/command-gone.ts): a table
// of the pure rule. The wait is only worth it while the launching node is live: a launching daemon that is down stops
// nothing and marks nothing, and waiting for it would keep the secrets placed for the whole bound.
import t from 'tap'
import { commandMayRun } from '../../daemon/runs/command-gone.js'
import type { RunRecord } from '../../daemon/types.js'
import { intentRecord } from '../store/contract/run-ledger-contract.js'

const ended = (over: Partial<RunRecord> = {}): RunRecord => ({
  ...intentRecord(1), version: 3, mode: 'launch', state: 'killed', endedAt: '2026-12-02T23:00:00.000Z', endReason: 'revoked by alice', launchedBy: 'a', ...over
})
const live = new Set(['a', 'b'])
const alive = (n: string): boolean => live.has(n)

const cases: Array<[string, RunRecord, boolean]> = [
  ['launched by a live other node, ended by a revoke, no mark: wait', ended(), true],
  ['launched by a node that is down: nobody will stop it or mark it, no wait', ended({ launchedBy: 'c' }), false],
  ['launched by this node: its own PTY host stops it', ended({ launchedBy: 'b' }), false],
  ['marked gone already', ended({ commandExit: { at: '2026-12-02T23:00:01.000Z', exitCode: 0, signal: null } }), false],
  ['ended by its command\'s own exit (a status recorded)', ended({ state: 'completed', exitCode: 0, endReason: 'command exited' }), false],
  ['ended by a signal the command got', ended({ signal: 'SIGTERM' }), false],
  ['still live', ended({ state: 'running', endedAt: null }), false],
  ['not a launched run', ended({ mode: 'arm' }), false],
  ['a record of an older daemon (no launchedBy)', ended({ launchedBy: undefined }), false]
]
for (const [what, run, wait] of cases) t.equal(commandMayRun(run, 'b', alive), wait, what)
