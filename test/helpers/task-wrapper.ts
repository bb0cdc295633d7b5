// A Nextflow task work dir for tests: `.command.sh` and a `.command.run` in the shape Nextflow's BashWrapperBuilder
// renders it from command-run.txt (NOTES.md 1.6): `set -e`/`set -u`, functions, and nxf_main() sourcing the secrets
// export file with the line LocalSecretsProvider.getSecretsEnv writes, then running `.command.sh` and recording its
// exit status. Written for this project from the template's structure, not copied.
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export interface TaskSpec {
  /** the .nf-<hash>.secrets path the wrapper sources; absent: a task without secrets */
  secretsFile?: string
  names?: string[]
  /** the body of .command.sh (run with bash -ue) */
  script: string
  /** chown the dir and its files to this uid/gid */
  owner?: { uid: number, gid: number }
  mode?: number
}

export function secretsLine (names: readonly string[], path: string): string {
  return `source /dev/stdin <<<"$(cat <(grep -w ${names.map(n => `-e '${n}=.*'`).join(' ')} ${path}))"`
}

export function commandRun (spec: Pick<TaskSpec, 'secretsFile' | 'names'>): string {
  const secrets = spec.secretsFile !== undefined ? `    ${secretsLine(spec.names ?? [], spec.secretsFile)}\n` : ''
  return `#!/bin/bash
# NEXTFLOW TASK: PRINT_TOKEN (1)
set -e
set -u
NXF_DEBUG=\${NXF_DEBUG:=0}; [[ $NXF_DEBUG > 1 ]] && set -x
NXF_ENTRY=\${1:-nxf_main}

nxf_date() {
    local ts=$(date +%s%3N);
    if [[ \${#ts} == 10 ]]; then echo \${ts}000
    else echo $ts
    fi
}

on_exit() {
    exit_status=\${nxf_main_ret:=$?}
    printf -- $exit_status > "$NXF_TASK_WORKDIR"/.exitcode
    exit $exit_status
}

nxf_main() {
    trap on_exit EXIT
    set +u
    NXF_SCRATCH=''
    export NXF_TASK_WORKDIR="$PWD"
    set -u
${secrets}    [[ $NXF_SCRATCH ]] && cd $NXF_SCRATCH
    echo start > .command.begin
    set +e
    /bin/bash -ue "$NXF_TASK_WORKDIR"/.command.sh > "$NXF_TASK_WORKDIR"/.command.out 2> "$NXF_TASK_WORKDIR"/.command.err
    nxf_main_ret=$?
}

$NXF_ENTRY
`
}

/** Make a task work dir at `dir` (mkdir -p) holding .command.run and .command.sh. */
export function writeTask (dir: string, spec: TaskSpec): string {
  mkdirSync(dir, { recursive: true })
  const files = [join(dir, '.command.run'), join(dir, '.command.sh')]
  writeFileSync(files[0]!, commandRun(spec), { mode: 0o644 })
  writeFileSync(files[1]!, `#!/bin/bash -ue\n${spec.script}\n`, { mode: 0o644 })
  chmodSync(dir, spec.mode ?? 0o755)
  if (spec.owner !== undefined) for (const p of [dir, ...files]) chownSync(p, spec.owner.uid, spec.owner.gid)
  return dir
}
