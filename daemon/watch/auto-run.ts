// Auto-runs (SPEC section 8): a Nextflow start in a watched dir that no armed or running run claims becomes a run of
// the launch dir's owner, when the watch names targets. Only targets that still help once Nextflow runs are used:
// the hpc store is read by Nextflow at its start, so it is too late for it; aws (and the memory fake) are read by
// tasks later. Whatever is not done is said in a `run.skipped` event, never silently.
// Whose runs: a user's watch makes auto-runs only for launch dirs that user owns (their walk does not even enter
// anyone else's dirs); an admin's watch (the config's, or an admin's `watch add`) for the launch dir's owner, whoever
// that is, as SPEC section 8 says. And only from a history no one else could have written (read-owned.ts): a group
// member of a shared project dir must not be able to start someone's secrets on their way to AWS by appending a line.
import { isCoded } from '../errors.js'
import type { EventBus } from '../events.js'
import type { UserDirectory } from '../identity/users.js'
import type { Logger } from '../logger.js'
import type { RunChecks, RunLifecycle } from '../runs/service.js'
import { isTerminal, type RunRecord, type TargetName } from '../types.js'
import { isLeftover, type HistoryRecord } from '../nextflow/history.js'
import { scanHistory } from '../nextflow/history-file.js'
import { createCheckpoints, type Checkpoints } from '../nextflow/history-checkpoints.js'
import { autoRunId } from '../runs/ids.js'
import { intentPending } from '../runs/run-rules.js'

/** Targets an auto-run can use: what is read after Nextflow has started. Pure. */
export function lateTargets (targets: readonly string[]): TargetName[] {
  return targets.filter((t): t is TargetName => t === 'aws' || t === 'memory')
}

const PLACED_POLL_MS = 10
const PLACED_WAIT_MS = 5000

/**
 * Does a live run in this launch dir claim the history line? By session UUID or runName; else a run not yet
 * started whose mark the line is at or after (a `-resume` reuses an old UUID: SPEC section 5). A run still being
 * placed claims nothing by its mark: its mark is recorded with its first placement (create-run.ts), null until then,
 * and AutoRuns waits for that before asking (#placed). Pure.
 */
export function claimedBy (runs: readonly RunRecord[], launchDir: string, record: HistoryRecord): RunRecord | null {
  const live = runs.filter(r => !isTerminal(r.state) && r.launchDir === launchDir)
  return live.find(r => r.sessionId === record.sessionId || r.runName === record.runName) ??
    live.find(r => r.runName === null && !intentPending(r) && (r.historyMark === null || record.index >= r.historyMark)) ?? null
}

export interface AutoRunWatch {
  root: string
  workspace: string | null
  targets: string[]
  /** the watch's owner, whose launch dirs alone it makes auto-runs for; null for an admin's watch (any owner) */
  onlyUid: number | null
}

/** May this watch make an auto-run in a launch dir owned by `uid`? Pure. */
export function mayAutoRun (watch: Pick<AutoRunWatch, 'onlyUid'>, uid: number): boolean {
  return watch.onlyUid === null || watch.onlyUid === uid
}

/** The record's position among all the history's records (the watcher reads only a tail), for the armed runs' marks. */
async function withFileIndex (launchDir: string, uid: number, record: HistoryRecord, histories: Checkpoints): Promise<HistoryRecord | null> {
  let index: number | null = null
  const scan = await scanHistory(launchDir, uid, () => {
    index = null
    // the last line of that runName: one read from a checkpoint is it, unless none was and the rest may hold one
    return { visit: r => { if (r.runName === record.runName) index = r.index }, enough: skipped => index !== null || !skipped.mayHold(record.runName) }
  }, histories)
  return scan === null || index === null ? null : { ...record, index }
}

/**
 * What became of one start: `provisioned` an auto-run (runId); `claimed` by a live run of the dir (its runId);
 * `skipped` with a run.skipped event saying why; `ignored` as no start of this watch's (no targets, another user's
 * dir, a leftover, already handled, a dir gone). A test waits for it to show that a start did NOT become an auto-run.
 */
export interface AutoRunDecision {
  launchDir: string
  runName: string
  outcome: 'provisioned' | 'claimed' | 'skipped' | 'ignored'
  runId: string | null
}

export interface AutoRunDeps {
  runs: RunLifecycle
  monitor: RunChecks
  users: UserDirectory
  events: EventBus
  logger: Logger
  clock: () => Date
  /** told of every decision once it is made (and acted on) */
  onAutoRun?: (d: AutoRunDecision) => void
  /** the daemon's history checkpoints (history-checkpoints.ts), shared with the monitor's probes; else its own */
  histories?: Checkpoints
}

type Outcome = Pick<AutoRunDecision, 'outcome' | 'runId'>
const IGNORED: Outcome = { outcome: 'ignored', runId: null }
const SKIPPED: Outcome = { outcome: 'skipped', runId: null }

export class AutoRuns {
  readonly #deps: AutoRunDeps
  readonly #log: Logger
  // `<launchDir>\0<runName>` of starts already handled: two groups may report the same line.
  readonly #handled = new Set<string>()

  readonly #histories: Checkpoints

  constructor (deps: AutoRunDeps) {
    this.#deps = deps
    this.#log = deps.logger.child({ room: 'auto-runs' })
    this.#histories = deps.histories ?? createCheckpoints()
  }

  /**
   * Until no run of the dir that would claim by its mark is being placed (a few ms, an arm's own write-ahead; an
   * auto-run claims by its runName and is not waited for), looked at every PLACED_POLL_MS and at most PLACED_WAIT_MS:
   * a placement that hangs past that claims nothing (claimedBy).
   */
  async #placed (launchDir: string): Promise<void> {
    for (let waited = 0; waited < PLACED_WAIT_MS && this.#deps.runs.live(launchDir).some(r => r.runName === null && intentPending(r)); waited += PLACED_POLL_MS) {
      await new Promise(resolve => setTimeout(resolve, PLACED_POLL_MS))
    }
  }

  #skip (user: string, watch: AutoRunWatch, reason: string): void {
    this.#log.info({ user, workspace: watch.workspace, reason }, 'auto-run skipped')
    this.#deps.events.publish({ type: 'run.skipped', user, ...(watch.workspace !== null ? { workspace: watch.workspace } : {}), reason })
  }

  /**
   * A start seen in `launchDir` under `watch`: provision an auto-run unless a run claims it. `read`: the history the
   * record came from, as the watcher read it through its root's fd (held-root.ts): whether only its owner (and root)
   * could write it, the launch dir's owner and the file's mtime. Resolves to the auto-run's id, if one was made.
   */
  async started (watch: AutoRunWatch, launchDir: string, seen: HistoryRecord, read: { trusted: boolean, uid: number, mtimeMs: number }): Promise<string | null> {
    const decided = await this.#decide(watch, launchDir, seen, read)
    this.#deps.onAutoRun?.({ launchDir, runName: seen.runName, ...decided })
    return decided.outcome === 'provisioned' ? decided.runId : null
  }

  async #decide (watch: AutoRunWatch, launchDir: string, seen: HistoryRecord, read: { trusted: boolean, uid: number, mtimeMs: number }): Promise<Outcome> {
    const { runs, users, clock } = this.#deps
    if (seen.status !== 'running' || watch.targets.length === 0) return IGNORED
    // The owner of the dir the line was read in, from its fd: the path may name another dir by now.
    const { uid, trusted } = read
    if (!mayAutoRun(watch, uid)) {
      this.#log.debug({ root: watch.root, uid }, 'a start in a dir of another user: not an auto-run of this watch')
      return IGNORED
    }
    // A run of this dir still being placed gets its mark with its first placement (create-run.ts): its claim is known
    // once that is recorded, and the monitor gives it the line at its mark too, so the two must agree on it.
    await this.#placed(launchDir)
    // A run armed here and not yet started claims the first line after its mark: the mark counts the whole file.
    const marks = runs.live(launchDir).some(r => r.runName === null && r.historyMark !== null)
    const record = marks ? await withFileIndex(launchDir, uid, seen, this.#histories) : seen
    if (record === null) return IGNORED
    const claimer = claimedBy(runs.live(launchDir), launchDir, record)
    if (claimer !== null) return { outcome: 'claimed', runId: claimer.runId }
    const key = `${launchDir}\0${record.runName}`
    if (this.#handled.has(key)) return IGNORED
    this.#handled.add(key)
    if (this.#handled.size > 10_000) this.#handled.delete(this.#handled.values().next().value as string)
    // A leftover (a tree moved in, a run killed long ago) is not a start. Judged by the history's mtime as it was read
    // (through `.nextflow` opened O_NOFOLLOW): the line's own time has no zone (a New York JVM's line read by a daemon
    // in UTC is not 5 hours old) and may not even be Gregorian (history.ts).
    if (isLeftover(read.mtimeMs, clock().getTime())) return IGNORED

    const owner = users.userByUid(uid)?.name ?? `uid:${uid}`
    if (!trusted) {
      this.#skip(owner, watch, 'the history is writable by others than its owner (group or world): no auto-run from it; chmod go-w the .nextflow dir and its history')
      return SKIPPED
    }
    const targets = lateTargets(watch.targets)
    if (targets.length === 0) {
      this.#skip(owner, watch, `no target of this watch helps a run that has started (${watch.targets.join(',')})`)
      return SKIPPED
    }
    let caller
    try {
      caller = users.callerForUid(uid)
    } catch (err) {
      this.#skip(owner, watch, isCoded(err) ? err.code : 'the owner of the launch dir is unknown')
      return SKIPPED
    }
    try {
      // Nextflow chose its own UUID: the runName pins the history line (and through it the session lock and log). The
      // run is born with it: the monitor may check it while it is still being provisioned.
      const created = await runs.create(caller, {
        mode: 'auto',
        launchDir,
        targets,
        runName: record.runName,
        autoSessionId: record.sessionId,
        ...(watch.workspace !== null ? { workspace: watch.workspace } : {})
      })
      this.#log.info({ runId: created.runId, user: caller.user, runName: record.runName }, 'auto-run provisioned')
      await this.#deps.monitor.checkRun(created.runId)
      return { outcome: 'provisioned', runId: created.runId }
    } catch (err) {
      // Another node saw the same start and made its run first (the id is the start's: ids.ts autoRunId). Its insert
      // is acknowledged, but this node's view of the ledger may not show it yet: settle before looking.
      if (isCoded(err, 'NFS_ERR_CONFLICT')) {
        await runs.settle().catch(() => {})
        const made = runs.run(autoRunId(launchDir, record.sessionId, record.runName))
        if (made !== undefined) return { outcome: 'claimed', runId: made.runId }
      }
      this.#skip(owner, watch, isCoded(err) ? `${err.code}: ${err.message}` : 'provisioning failed')
      return SKIPPED
    }
  }
}
