// A new run, as RunManager.create makes it: the caller's checks, the secrets it gets, then the write-ahead provision
// (provision.ts). Nothing is placed before every check has passed.
import { lstat } from 'node:fs/promises'
import { isAbsolute } from 'node:path'
import type { Target } from '../../adapters/types.js'
import { can, PERSONAL } from '../rules/access.js'
import type { Config } from '../config.js'
import { nfsError } from '../errors.js'
import type { Logger } from '../logger.js'
import { resolveSecrets, userScope, workspaceScope } from '../rules/resolve.js'
import type { SecretValue } from '../secret-value.js'
import type { AuditLog } from '../store/audit-log.js'
import type { SecretsStore } from '../store/secrets-store.js'
import { TARGET_NAMES, type Caller, type TargetName } from '../types.js'
import { chooseNamed, chooseSecrets } from './choose-secrets.js'
import type { DeferredLedger } from './deferred-records.js'
import { autoRunId, newRunId, newSessionId } from './ids.js'
import type { Probes } from './probes.js'
import { intentRecord, provisionRun, type ProvisionDeps } from './provision.js'
import { checkRerun } from './rerun.js'
import type { Revoker } from './revoker.js'
import type { CreateRunRequest, CreatedRun } from './service.js'

export interface CreateDeps {
  config: Config
  ledger: DeferredLedger
  store: SecretsStore
  audit: AuditLog
  targets: ReadonlyMap<TargetName, Target>
  clock: () => Date
  host: string
  probes: Probes
  /** this node's name (RunRecord.launchedBy) */
  node: string
  log: Logger
  observe?: (target: TargetName, ok: boolean) => void
  /** the runs being provisioned right now (RunManager.provisioning): the target sweep leaves their dirs alone */
  provisioning: Set<string>
  /** end a run whose intent is on disk and revoke what it placed (ProvisionDeps.undo) */
  undo: ProvisionDeps['undo']
}

function targetsFor (req: CreateRunRequest, deps: Pick<CreateDeps, 'config' | 'targets'>): TargetName[] {
  const names = req.targets !== undefined && req.targets.length > 0 ? req.targets : deps.config.runs.defaultTargets
  for (const t of names) {
    if (!(TARGET_NAMES as readonly string[]).includes(t) || !deps.targets.has(t)) throw nfsError('NFS_ERR_INVALID_TARGET', [JSON.stringify(t)])
  }
  return [...new Set(names)]
}

async function checkLaunchDir (caller: Caller, dir: string): Promise<void> {
  if (!isAbsolute(dir)) throw nfsError('NFS_ERR_INVALID_PATH', [`${JSON.stringify(dir.slice(0, 200))}: launchDir must be absolute`])
  let st
  try {
    st = await lstat(dir)
  } catch {
    throw nfsError('NFS_ERR_INVALID_PATH', [`${JSON.stringify(dir.slice(0, 200))}: no such directory`])
  }
  if (!st.isDirectory()) throw nfsError('NFS_ERR_INVALID_PATH', [`${JSON.stringify(dir.slice(0, 200))}: not a directory`])
  // Watching and reading a launch dir on a user's behalf: it must be theirs, or one they can write through a group.
  const mine = st.uid === caller.uid || caller.uid === 0
  const viaGroup = (st.mode & 0o020) !== 0 && caller.gids.includes(st.gid)
  if (!mine && !viaGroup && (st.mode & 0o002) === 0) throw nfsError('NFS_ERR_FORBIDDEN', [`launch dir ${dir} is not yours`])
}

/**
 * SPEC 11: a run is tied only to a job Slurm itself records as the caller's. Otherwise anyone could keep a run (and
 * its TTL-free secrets) alive on someone else's job, or make the daemon ask Slurm about made-up ids. A job Slurm
 * does not know and a job of another user get the same answer, so the check tells nothing about others' jobs.
 */
export async function checkSlurmJob (probes: Probes, caller: Caller, jobId: string): Promise<void> {
  if (await probes.slurmOwner(jobId) !== caller.uid) throw nfsError('NFS_ERR_FORBIDDEN', [`Slurm job ${jobId} is not a job of yours`])
}

export async function createRun (deps: CreateDeps, caller: Caller, req: CreateRunRequest): Promise<CreatedRun> {
  const { store, ledger, clock, config, audit, probes } = deps
  if (req.secretsFile !== undefined) req = await checkRerun(caller, req, ledger, deps.targets)
  const wsName = req.workspace === undefined || req.workspace === '' ? PERSONAL : req.workspace
  const ws = wsName === PERSONAL ? null : store.getWorkspace(wsName)
  if (wsName !== PERSONAL && ws === undefined) throw nfsError('NFS_ERR_WORKSPACE_NOT_FOUND', [JSON.stringify(wsName.slice(0, 80))])
  if (ws != null && !can(caller, 'runs.launch', ws)) throw nfsError('NFS_ERR_FORBIDDEN', [`starting runs in workspace ${ws.name} needs the launch role`])
  const targets = targetsFor(req, deps)
  // The launch dir's history (and the process's start time) are read in the thread pool while the event loop checks
  // the launch dir, resolves and decrypts below: the arm waits for the longest of these, not their sum (issue 18).
  // Only an absolute path is read (a relative one would be the daemon's cwd); what a refused request read is dropped.
  const pid = req.pid ?? (req.mode === 'run' ? caller.pid : null)
  const readable = isAbsolute(req.launchDir)
  const started = readable && pid !== null && pid > 0 ? probes.processStart(pid) : null
  // A history that cannot be read leaves the run without a mark, as a record from before marks (it was read after the
  // intent since issue 18: its failure is not the target's, and fails nothing placed).
  const marked = readable
    ? probes.historyMark(req.launchDir, caller.uid).catch((err: unknown) => {
      deps.log.warn({ launchDir: req.launchDir, err }, 'the launch dir\'s history could not be read: the run has no history mark')
      return null
    })
    : null
  // Awaited below; a check or a resolution that fails first must not leave them unhandled.
  started?.catch(() => {})
  await checkLaunchDir(caller, req.launchDir)
  if (req.slurmJobId !== undefined) await checkSlurmJob(probes, caller, req.slurmJobId)

  // Resolution: every workspace secret, the user's own winning by name; --only or the pipeline's names narrow it.
  const user = userScope(caller.user)
  const wsScope = ws != null ? workspaceScope(ws.name) : null
  const chosen = req.only !== undefined && req.only.length > 0
    ? chooseNamed(req.only, (scope, name) => store.getSecret(scope, name) !== undefined, user, wsScope)
    : chooseSecrets(resolveSecrets(store.listSecrets([user]), wsScope !== null ? store.listSecrets([wsScope]) : []), req)
  const sealed = store.readValues(chosen.map(r => ({ scope: r.scope, name: r.name })))
  const values = new Map<string, SecretValue>()
  for (const r of chosen) values.set(r.name, sealed.get(`${r.scope}\0${r.name}`)!)

  const now = clock()
  const runId = req.mode === 'auto' && req.autoSessionId !== undefined && req.runName !== undefined ? autoRunId(req.launchDir, req.autoSessionId, req.runName) : newRunId()
  // An auto-run's id is its start's (ids.ts): the same start seen again after its run left the hot set (a restart
  // while a killed Nextflow's history still says running) must not place its secrets a second time. The ledger's
  // insert sees only the hot set; a random id never meets an archived one, so only these ids are looked up.
  if (req.mode === 'auto' && ledger.archive !== undefined && await ledger.archive.find(runId) !== undefined) {
    throw nfsError('NFS_ERR_CONFLICT', [`run ${runId} already exists (archived)`])
  }
  const sessionId = newSessionId()
  const ttl = req.ttlSeconds ?? config.runs.defaultTtlSeconds
  const pidStart = await started
  // The history's mark goes in with the first placement's record, not with the intent: its read (a chain of round
  // trips of the thread pool through the launch dir) was the longest wait before the intent (issue 18). No line of
  // the history can be the run's before that record: its Nextflow has not been given its secrets yet, and a run still
  // placing them claims no line by a mark (claimedBy). A run without targets has no such record: its intent has it.
  // checkLaunchDir refused a relative path above, so `marked` is there.
  const historyMark = targets.length === 0 ? await marked! : null
  const record = intentRecord({
    runId, sessionId, caller, workspace: wsName, host: deps.host, req, names: [...values.keys()], targets, now, ttlSeconds: ttl, pid, pidStart, historyMark, node: deps.node
  })
  // Nextflow before 24.04.2 expands `$` in the env file its tasks source; the version is known only once it logs it.
  const dollarNames = targets.includes('hpc') ? [...values].filter(([, v]) => v.contains('$')).map(([n]) => n) : []
  if (dollarNames.length > 0) record.dollarNames = dollarNames
  const auditEntry = { action: 'run.provision', actor: caller.user, runId, workspace: wsName, detail: { targets: targets.join(','), secrets: values.size } }
  const log = deps.log.child({ runId })
  log.info({ user: record.user, workspace: wsName, mode: record.mode, targets, secrets: record.names.length }, 'provisioning')
  // Until its intent is in the ledger a run's dirs exist only here: the target sweep must not take them for the
  // leftovers of a crash (it runs in the background from the start; launches right after a start raced it).
  deps.provisioning.add(runId)
  const { run, env } = await provisionRun({
    ledger,
    audit,
    // Counted again with the intent's insert: in a cluster the reservation above sees only this node's arms.
    ...(caller.isAdmin ? {} : { liveLimit: config.limits.liveRunsPerUser }),
    targets: deps.targets,
    log: deps.log,
    ...(deps.observe !== undefined ? { observe: deps.observe } : {}),
    undo: deps.undo
  }, record, targets, values, auditEntry, targets.length > 0 ? marked! : undefined).finally(() => { deps.provisioning.delete(runId) })
  // In memory at once; the store writes it later, off this path (see SecretsStore.markUsed).
  await store.markUsed(chosen.map(r => ({ scope: r.scope, name: r.name })), now.toISOString())
  log.info({ state: run.state }, 'provisioned')
  return { runId, sessionId, env, secrets: run.names, targets }
}

/** The undo's first half: targets never called (or refused before placing anything) are recorded as revoked. */
export async function markUntouched (revoker: Revoker, clock: () => Date, runId: string, names: TargetName[]): Promise<void> {
  if (names.length === 0) return
  await revoker.record(runId, 'untouched targets', r => {
    for (const n of names) {
      const t = r.targets[n]
      if (t === undefined || t.state !== 'provisioning') continue
      t.state = 'revoked'
      t.revokedAt = clock().toISOString()
    }
    return r
  }, { asOwner: true })
}
