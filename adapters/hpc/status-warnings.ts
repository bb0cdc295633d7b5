// What `nf-secrets status` says about the hpc runs root: each misconfiguration the daemon can see, with a stable code.
// Gathering the facts touches the filesystem (hpc.ts); judging them is pure, so it is tested with a table.
import type { StatusWarning } from '../types.js'
import { isSharedFsType } from '../../daemon/os/fs-type.js'
import { unsafeRunsRootCharacter } from '../../daemon/config.js'

export interface RunsRootFacts {
  /** the runs root with every symlink resolved */
  resolved: string
  fsType: string | null
  /** link(2) worked in the runs root; null when it could not be tried */
  hardLinks: boolean | null
  /** system mode: the components of `resolved` that others cannot search (no o+x), so users cannot reach their runs */
  closedComponents: string[]
}

export function runsRootWarnings (f: RunsRootFacts): StatusWarning[] {
  const out: StatusWarning[] = []
  if (f.fsType === null || !isSharedFsType(f.fsType)) {
    out.push({
      code: 'NFS_WARN_RUNS_ROOT_NOT_SHARED',
      paths: [f.resolved],
      message: `runs root ${f.resolved} is on ${f.fsType ?? 'an unknown filesystem'}, not a shared filesystem; ` +
        'grid tasks on compute nodes will not find their secrets (local executor only)'
    })
  }
  if (f.hardLinks === false) {
    out.push({
      code: 'NFS_WARN_RUNS_ROOT_NO_HARDLINKS',
      paths: [f.resolved],
      message: `runs root ${f.resolved} is on a filesystem without hard links; provisioning there fails (the store is put in place with link(2))`
    })
  }
  const unsafe = unsafeRunsRootCharacter(f.resolved)
  if (unsafe !== null) {
    out.push({
      code: 'NFS_WARN_RUNS_ROOT_CHARACTERS',
      paths: [f.resolved],
      message: `runs root resolves to ${JSON.stringify(f.resolved)}, which holds ${unsafe}; Nextflow puts the store's directory unquoted into every task's wrapper, so tasks break`
    })
  }
  if (f.closedComponents.length > 0) {
    out.push({
      code: 'NFS_WARN_RUNS_ROOT_MODE',
      // the dirs to chmod, not the runs root the message also names
      paths: [...f.closedComponents],
      message: `other users cannot search ${f.closedComponents.join(', ')} (no o+x): users' Nextflow cannot reach their run dirs under ${f.resolved}`
    })
  }
  return out
}
