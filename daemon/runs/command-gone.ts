// A launched command runs under the PTY host of the node that launched it, and only that node can stop it. When
// another node owns the run (it adopted the run while the launching daemon was down) and the run ends (a revoke, the
// owner's end), the launching node stops the command on seeing the end in the ledger, and the owner revokes: without a
// word between them the two happened at the same moment, and the command lost its secrets while it handled its
// SIGTERM. So the launching node marks the record once its command is gone (RunRecord.commandExit), and the owner's
// revoke waits for that mark, bounded by the stop's own bound (SIGTERM, the grace period, SIGKILL) and a margin: a
// launching node that died meanwhile, or an older daemon that writes no mark, delays the revoke by that much only.
import type { Logger } from '../logger.js'
import type { RunLedger } from '../store/run-ledger.js'
import { isTerminal, type RunRecord } from '../types.js'
import { withRun } from './transition.js'

/** after the grace period: the SIGKILL's own wait (pty/host.ts), the adopted command's poll, the mark's write */
const MARGIN_S = 10

export function commandGoneBoundMs (killGraceSeconds: number): number {
  return (killGraceSeconds + MARGIN_S) * 1000
}

export interface CommandWait {
  ledger: RunLedger
  /** this node's name */
  node: string
  /** has that node a live member now (RunOwnership.nodeAlive) */
  nodeAlive: (node: string) => boolean
  clock: () => Date
  /** how long after the run's end the owner waits for the mark at most */
  boundMs: number
  log: Logger
}

/**
 * Will another node's PTY host stop the run's command and mark it gone? A launched run, ended, launched by another
 * node that is live now (a launching daemon that is down stops nothing and marks nothing: waiting for it would only
 * keep the secrets placed longer), with no mark and no exit status of its command (an end by the command's own exit
 * records its status: it is gone). Pure.
 */
export function commandMayRun (run: RunRecord, node: string, nodeAlive: (node: string) => boolean): boolean {
  return run.mode === 'launch' && isTerminal(run.state) && run.launchedBy !== undefined && run.launchedBy !== node &&
    run.commandExit === undefined && run.exitCode === null && run.signal === null && nodeAlive(run.launchedBy)
}

/** Wait, before revoking, until the launching node marks the command gone, at most until `boundMs` after the run's end. */
export async function awaitCommandGone (w: CommandWait, run: RunRecord): Promise<void> {
  const pending = (r: RunRecord | undefined): boolean => r !== undefined && commandMayRun(r, w.node, w.nodeAlive)
  if (!pending(w.ledger.get(run.runId))) return
  const ended = run.endedAt === null ? w.clock().getTime() : Date.parse(run.endedAt)
  // Never longer than the bound from now: `endedAt` may come from another node's clock, running ahead of this one.
  const waitMs = Math.min(w.boundMs, ended + w.boundMs - w.clock().getTime())
  if (waitMs <= 0) return
  w.log.info({ runId: run.runId, node: run.launchedBy }, 'waiting for the launching node to stop the command before revoking')
  const marked = await new Promise<boolean>(resolve => {
    const finish = (ok: boolean): void => {
      clearTimeout(timer)
      unfollow()
      resolve(ok)
    }
    const unfollow = w.ledger.onChange(c => { if (c.runId === run.runId && !pending(w.ledger.get(run.runId))) finish(true) })
    // Not unref'd: a revoke waits on it; bounded, and cleared on the mark.
    const timer = setTimeout(() => { finish(false) }, waitMs)
  })
  if (!marked) w.log.warn({ runId: run.runId, node: run.launchedBy }, 'the launching node did not mark the command gone in time; revoking anyway')
}

/** The launching node's mark: the command of a run that had ended is gone now (once; a plain, non-owner write). */
export async function markCommandGone (w: CommandWait, runId: string, exit: { exitCode: number | null, signal: string | null }): Promise<void> {
  await withRun(w.ledger, runId, r => {
    if (r.mode !== 'launch' || !isTerminal(r.state) || r.commandExit !== undefined) return null
    r.commandExit = { at: w.clock().toISOString(), exitCode: exit.exitCode, signal: exit.signal }
    return r
  })
}
