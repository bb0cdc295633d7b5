// `nf-secrets rerun TASK_DIR` (SPEC 11) on the daemon's side: what a rerun request must be before anything is resolved
// or placed. A rerun is a short run of the caller like any other (write-ahead, revoked at its end, after a restart
// too); it differs in where its secrets go: exactly the names its task greps, at exactly the `.nf-<hash>.secrets` path
// its task sources, written by the hpc target as the user (adapters/hpc/secrets-file.ts).
import { constants } from 'node:fs'
import { lstat, open } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import { nfsError } from '../errors.js'
import { secretsFilePathProblem } from '../nextflow/secrets-env-file.js'
import type { RunLedger } from '../store/run-ledger.js'
import { isTerminal, type Caller, type TargetName } from '../types.js'
import type { CreateRunRequest } from './service.js'

const RUN_ID_RE = /^[0-9A-Za-z]{14}$/

/**
 * The task dir must be the caller's own: its owner is read from a handle opened with O_NOFOLLOW|O_DIRECTORY, so a
 * symlink swapped in for the dir is refused and a path cannot be one dir when checked and another when opened.
 * Group- or world-writable dirs of others are refused too (SPEC 11: only the caller's own task dirs).
 */
export async function checkOwnTaskDir (caller: Caller, dir: string): Promise<void> {
  const shown = JSON.stringify(dir.slice(0, 200))
  if (!dir.startsWith('/')) throw nfsError('NFS_ERR_INVALID_PATH', [`${shown}: the task dir must be absolute`])
  let fh
  try {
    fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch (err) {
    // With O_DIRECTORY Linux answers a symlink with ENOTDIR rather than ELOOP: lstat tells which it was.
    const link = await lstat(dir).then(st => st.isSymbolicLink(), () => false)
    if ((err as NodeJS.ErrnoException).code === 'ELOOP' || link) throw nfsError('NFS_ERR_UNSAFE_PATH', [shown, 'the task dir is a symlink'])
    throw nfsError('NFS_ERR_INVALID_PATH', [`${shown}: not a directory`])
  }
  try {
    const st = await fh.stat()
    if (st.uid !== caller.uid) throw nfsError('NFS_ERR_FORBIDDEN', [`task dir ${dir} is not yours`])
  } finally {
    await fh.close()
  }
}

/**
 * A rerun request checked and completed: hpc its only target (which must be configured), the names its task greps
 * (at least one), a secrets file path of Nextflow's shape, the caller's own task dir. When the file belongs in the run
 * dir of an earlier run of the caller's (the task ran under nf-secrets), that run must hold nothing any more, and its
 * workspace is the rerun's unless -w says otherwise.
 */
export async function checkRerun (caller: Caller, req: CreateRunRequest, ledger: RunLedger, targets: ReadonlyMap<TargetName, unknown>): Promise<CreateRunRequest> {
  const path = req.secretsFile!
  if (req.mode !== 'run') throw nfsError('NFS_ERR_BAD_REQUEST', ['secretsFile is for mode run (nf-secrets rerun)'])
  if (!targets.has('hpc') || (req.targets !== undefined && req.targets.some(t => t !== 'hpc'))) throw nfsError('NFS_ERR_INVALID_TARGET', ['"hpc" (a rerun writes its task\'s secrets file, on hpc only)'])
  if (req.names === undefined || req.names.length === 0) throw nfsError('NFS_ERR_BAD_REQUEST', ['a rerun names the secrets its task sources'])
  if (req.only !== undefined && req.only.length > 0) throw nfsError('NFS_ERR_BAD_REQUEST', ['a rerun gets the names its task sources; only does not apply'])
  const problem = secretsFilePathProblem(path)
  if (problem !== null) throw nfsError('NFS_ERR_INVALID_PATH', [`${JSON.stringify(path.slice(0, 200))}: ${problem}`])
  await checkOwnTaskDir(caller, req.launchDir)
  const earlierId = basename(dirname(path))
  // A settled earlier run may have left the hot set for the archive (its workspace is still the rerun's).
  const earlier = RUN_ID_RE.test(earlierId) ? ledger.get(earlierId) ?? await ledger.archive?.find(earlierId) : undefined
  let workspace = req.workspace
  if (earlier !== undefined && earlier.uid === caller.uid) {
    const holds = !isTerminal(earlier.state) || Object.values(earlier.targets).some(t => t !== undefined && t.state !== 'revoked')
    if (holds) throw nfsError('NFS_ERR_CONFLICT', [`run ${earlierId} still holds its secrets file; its tasks can run as they are`])
    if (workspace === undefined || workspace === '') workspace = earlier.workspace
  }
  return { ...req, targets: ['hpc'], ...(workspace !== undefined ? { workspace } : {}) }
}
