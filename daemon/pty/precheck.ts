// Before anything is provisioned: can the caller enter the launch dir, and is the command there? Asked as the
// caller (through setpriv in system mode), so permissions, ACLs and root-squashed network filesystems answer as
// they will for the command itself.
import { existsSync } from 'node:fs'
import { isAbsolute } from 'node:path'
import { runChild } from '../children/run-child.js'
import { nfsError } from '../errors.js'
import { CLEAN_PATH, privilegeArgs, type Identity } from './wrapper.js'

const NO_DIR = 89
const NO_ENTRY = 90
const NO_COMMAND = 91
// A dir on a hung network filesystem, or a caller who stops the check (it runs as them): the launch fails.
export const PRECHECK_DEADLINE_MS = 30_000

const SCRIPT = [
  `[ -d "$1" ] || exit ${NO_DIR}`,
  `cd -- "$1" 2>/dev/null || exit ${NO_ENTRY}`,
  `command -v -- "$2" >/dev/null 2>&1 || exit ${NO_COMMAND}`
].join('\n')

/** setpriv's path, from the places util-linux installs it. */
export function findSetpriv (candidates: readonly string[] = ['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv']): string | null {
  return candidates.find(p => existsSync(p)) ?? null
}

export interface PrecheckSpec {
  shell: string
  setpriv: string | null
  identity: Identity
  launchDir: string
  command: string
  /** the caller's PATH, where the command is looked up */
  path: string | undefined
}

export function precheckArgv (spec: PrecheckSpec): string[] {
  const drop = spec.setpriv === null ? [] : [spec.setpriv, ...privilegeArgs(spec.identity), '--']
  return [...drop, spec.shell, '-c', SCRIPT, 'nfs-check', spec.launchDir, spec.command]
}

export async function precheck (spec: PrecheckSpec): Promise<void> {
  const shown = JSON.stringify(spec.launchDir.slice(0, 200))
  if (!isAbsolute(spec.launchDir)) throw nfsError('NFS_ERR_INVALID_PATH', [`${shown}: launchDir must be absolute`])
  const [file, ...args] = precheckArgv(spec)
  // Only PATH of the caller's environment: this runs as root up to the setpriv.
  const res = await runChild(file!, args, { env: { PATH: spec.path ?? CLEAN_PATH }, deadlineMs: PRECHECK_DEADLINE_MS, maxOutputBytes: 1024 })
    .catch((err: unknown) => { throw nfsError('NFS_ERR_LAUNCH_FAILED', ['the launch check could not be started'], err) })
  if (res.timedOut) throw nfsError('NFS_ERR_LAUNCH_FAILED', ['the launch check did not finish in time'])
  const code = res.code ?? -1
  if (code === 0) return
  if (code === NO_DIR) throw nfsError('NFS_ERR_INVALID_PATH', [`${shown}: no such directory`])
  if (code === NO_ENTRY) throw nfsError('NFS_ERR_FORBIDDEN', [`you cannot enter ${shown}`])
  if (code === NO_COMMAND) throw nfsError('NFS_ERR_LAUNCH_FAILED', [`command ${JSON.stringify(spec.command.slice(0, 200))} not found in your PATH`])
  throw nfsError('NFS_ERR_LAUNCH_FAILED', [`the launch check failed (status ${code})`])
}
