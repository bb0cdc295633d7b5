// Placing a run's secrets: the write-ahead intent, then every target in turn, all or nothing.
// The first target starts while the intent is being written. It may prepare (resolve credentials, write where
// nothing reads yet, inside what its revoke and sweep remove) but makes nothing reachable until the intent is on
// disk (Target.provision's `ready`): the intent's fsync and the target's own work overlap, and a crash at any
// instant still leaves nothing the ledger does not name or a start's sweep does not find.
import type { Placement, Target } from '../../adapters/types.js'
import { isCoded, nfsError } from '../errors.js'
import { failpoint } from '../failpoints.js'
import type { Logger } from '../logger.js'
import type { SecretValue } from '../secret-value.js'
import type { AuditEntry, AuditLog } from '../store/audit-log.js'
import type { RunLedger } from '../store/run-ledger.js'
import type { Caller, RunRecord, TargetName } from '../types.js'
import type { CreateRunRequest } from './service.js'
import { targetRun } from './revoker.js'
import { withRun } from './transition.js'

export interface ProvisionDeps {
  ledger: RunLedger
  audit: AuditLog
  targets: ReadonlyMap<TargetName, Target>
  log: Logger
  observe?: (target: TargetName, ok: boolean) => void
  /**
   * Undo a run whose intent is on disk: record `untouched` targets (never called, or refused before placing
   * anything) as revoked, end the run as failed with `reason`, and revoke what was placed.
   */
  undo: (runId: string, untouched: TargetName[], reason: string) => Promise<void>
  /** the caller's liveRunsPerUser, checked again by the intent's insert (none for admins) */
  liveLimit?: number
}

export interface NewRun {
  runId: string
  sessionId: string
  caller: Caller
  workspace: string
  host: string
  req: CreateRunRequest
  /** the names the run gets, in the order they were resolved */
  names: string[]
  targets: readonly TargetName[]
  now: Date
  ttlSeconds: number
  pid: number | null
  pidStart: number | null
  /** null: recorded with the first placement (provisionRun's `historyMark`) */
  historyMark: number | null
  /** this node's name: a launched run's command runs under its PTY host (RunRecord.launchedBy) */
  node?: string
}

/** The write-ahead intent of a new run: every target `provisioning` until its placement is recorded. Pure. */
export function intentRecord (n: NewRun): Omit<RunRecord, 'version'> {
  const at = n.now.toISOString()
  const armed = n.req.mode === 'arm'
  const pid = n.pid !== null && n.pid > 0 ? n.pid : null
  return {
    runId: n.runId,
    sessionId: n.sessionId,
    user: n.caller.user,
    uid: n.caller.uid,
    gid: n.caller.gid,
    workspace: n.workspace,
    launchDir: n.req.launchDir,
    host: n.host,
    mode: n.req.mode,
    names: [...n.names],
    targets: Object.fromEntries(n.targets.map(t => [t, { state: 'provisioning', attempts: 0, nextAttemptAt: null, lastError: null, refs: [], revokedAt: null }])),
    state: armed ? 'armed' : 'running',
    env: { NXF_UUID: n.sessionId, NF_SECRETS_RUN_ID: n.runId },
    createdAt: at,
    startedAt: armed ? null : at,
    endedAt: null,
    expiresAt: armed ? new Date(n.now.getTime() + n.ttlSeconds * 1000).toISOString() : null,
    endReason: null,
    exitCode: null,
    signal: null,
    pid,
    pidStart: n.pidStart,
    slurmJobId: n.req.slurmJobId ?? null,
    runName: n.req.mode === 'auto' ? n.req.runName ?? null : null,
    historyMark: n.historyMark,
    ...(n.req.secretsFile !== undefined ? { secretsFile: n.req.secretsFile } : {}),
    ...(n.req.mode === 'launch' && n.node !== undefined ? { launchedBy: n.node } : {})
  }
}

type Settled<T> = { ok: true, value: T } | { ok: false, error: unknown }

function settle<T> (p: Promise<T>): Promise<Settled<T>> {
  return p.then(value => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }))
}

/**
 * Write the intent, place `values` in every target in `names` order, record each placement, and write the audit
 * line. Resolves with the run as recorded and the environment the run needs. On failure nothing stays placed:
 * a failed intent means no target made anything reachable; any later failure ends the run and revokes it.
 */
export async function provisionRun (
  deps: ProvisionDeps,
  record: Omit<RunRecord, 'version'>,
  names: readonly TargetName[],
  values: ReadonlyMap<string, SecretValue>,
  auditEntry: AuditEntry,
  /** the launch dir's history mark, still being read: recorded with the first target's placement (null: none) */
  historyMark?: Promise<number | null>
): Promise<{ run: RunRecord, env: Record<string, string> }> {
  const intent = deps.ledger.insert(record, deps.liveLimit !== undefined ? { liveLimit: deps.liveLimit } : undefined)
  const ready = intent.then(() => {})
  // Seen through `intent` below; a target that fails before awaiting `ready` must not leave it unhandled.
  ready.catch(() => {})
  const first = names.length > 0 ? settle(deps.targets.get(names[0]!)!.provision(targetRun({ ...record, version: 0 }), values, { ready })) : null
  let run: RunRecord
  try {
    run = await intent
  } catch (err) {
    // The first target saw `ready` reject and discarded what it prepared; wait for that before answering.
    await first
    throw err
  }
  failpoint('run.after-intent')
  const log = deps.log.child({ runId: run.runId })
  // The audit line is written while the targets fill, and is on disk before the answer. A placement that fails
  // after it is followed by the run.revoke lines of its undoing. Its fsync goes out beside the data fsync of the last
  // `provisioned` record (a file ledger issues it there: syncAlong), so the two share one journal commit instead of
  // two in a row (issue 18); the answer still waits for both, as it waited for the line's own fsync before. The line
  // was never ordered before that record (the two were written side by side), so a crash loses nothing it kept.
  let lineWritten = false
  const written = settle(deps.audit.appendUnsynced(auditEntry).then(() => { lineWritten = true }))
  // Only a line already written: the ledger's write never waits for the audit log's queue.
  const syncAlong = async (): Promise<void> => { if (lineWritten) await deps.audit.sync() }
  const env: Record<string, string> = { ...run.env }
  for (const [i, name] of names.entries()) {
    try {
      let placement: Placement
      if (i === 0) {
        const placed = await first!
        if (!placed.ok) throw placed.error
        placement = placed.value
      } else {
        placement = await deps.targets.get(name)!.provision(targetRun(run), values)
      }
      failpoint('run.after-provision')
      Object.assign(env, placement.env)
      const mark = i === 0 && historyMark !== undefined ? await historyMark : undefined
      run = await withRun(deps.ledger, run.runId, r => {
        const t = r.targets[name]!
        t.state = 'provisioned'
        t.refs = placement.refs
        r.env = { ...r.env, ...placement.env }
        if (mark !== undefined) r.historyMark = mark
        return r
      }, i === names.length - 1 ? { asOwner: true, syncAlong } : { asOwner: true })
      deps.observe?.(name, true)
    } catch (err) {
      deps.observe?.(name, false)
      log.warn({ target: name, err }, 'provisioning failed; removing what was placed')
      // Targets never called, and one that refused before placing anything (no region or credentials), hold
      // nothing: recorded as revoked, so that an unusable target is not retried for ever.
      const refused = isCoded(err) && err.code === 'NFS_ERR_TARGET_UNAVAILABLE'
      // The line goes before the run.revoke lines of the undoing (their fsync covers it).
      await written
      await deps.undo(run.runId, refused ? names.slice(i) : names.slice(i + 1), `provisioning to ${name} failed`)
      if (isCoded(err)) throw err
      throw nfsError('NFS_ERR_PROVISION_FAILED', [name, 'unexpected error'], err)
    }
  }
  // At once when the last ledger write carried the fsync (syncAlong); otherwise (a shared ledger) it is made here.
  const w = await written
  const a = w.ok ? await settle(deps.audit.sync()) : w
  if (!a.ok) {
    // Unaudited secrets do not stay out: the run fails like a failed target.
    log.warn({ err: a.error }, 'the audit line could not be written; removing what was placed')
    await deps.undo(run.runId, [], 'the audit log could not be written')
    throw a.error
  }
  return { run, env }
}
