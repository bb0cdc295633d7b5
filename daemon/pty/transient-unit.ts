// Launched commands under systemd: when the daemon is a systemd system service, its own sandbox (ProtectSystem=,
// ProtectHome=, NoNewPrivileges=, its syscall filter, UMask=) must not become the user's. The command then runs in a
// transient service of its own, started by PID 1 as the caller (`systemd-run --uid= --wait`), with the view of the
// system a login gives: home and launch dir writable, the machine's /tmp, setuid helpers working, accounted to the
// user's slice. The daemon's sandbox stays as the unit says.
//
// The process tree is: wrapper (`/bin/sh`, as root, in the daemon's cgroup, on node-pty's terminal) -> `systemd-run
// --wait`; and, in the transient unit `nf-secrets-launch-<runId>.service`: `/bin/sh` (as the caller) -> the command,
// on that same terminal (TTYPath=, StandardInput=tty-force: PID 1 makes it the unit's controlling terminal). One
// terminal, as with the direct spawn: ^C and window sizes reach the command, and when the daemon restarts and the
// terminal's master closes, the command's writes fail instead of blocking (`systemd-run --pty` would put a second
// terminal between, which nobody drains once systemd-run's own output is gone: the command hangs). So:
//  - the run still ends when the command exits: systemd-run returns the unit's status, the wrapper records it in the
//    status file and exits; the inner shell waits for the command (not exec) and exits 128+N for a signal, because
//    systemd-run would report a command killed by SIGTERM as a success;
//  - a kill goes to every process of the unit (`systemctl kill`), never to systemd-run: a signalled systemd-run
//    lets go of the unit and the run would look over while the command goes on;
//  - the caller's environment, which may hold tokens, goes to the unit as a credential (LoadCredential=, read by
//    PID 1 from the daemon's private dir, visible in the unit only to the caller); never as argv or Environment=,
//    which every local user can read (`systemctl show`). PID 1 removes the file once the command has started;
//  - systemd expands `$NAME` in a unit's command line: every `$` of the argv is doubled so that none is.
import { existsSync } from 'node:fs'
import { runChild } from '../children/run-child.js'
import { EXIT_NO_DIR, EXIT_WRAPPER, type Identity } from './wrapper.js'

export const CREDENTIAL = 'nfs-env'

// $1 env file, $2 status file, $3 systemd-run, then its argv. As the direct wrapper: HUP ignored, INT/TERM/QUIT
// trapped. Its terminal (node-pty's) becomes the unit's.
const OUTER = [
  "trap '' HUP",
  "trap ':' INT TERM QUIT",
  'umask 077',
  'envfile=$1; statusfile=$2; run=$3; shift 3',
  `tty=$(tty) || exit ${EXIT_WRAPPER}`,
  '"$run" "--property=TTYPath=$tty" "$@"',
  'st=$?',
  'rm -f -- "$envfile"',
  'printf \'%s\\n\' "$st" > "$statusfile"',
  'exit "$st"'
].join('\n')

// In the unit, as the caller: $1 the launch dir, then the command, run in the foreground (not exec'd, and not in the
// background, where a shell without job control would give it /dev/null for stdin and ignore ^C). HUP is ignored
// for the command, which so outlives the terminal when the daemon restarts, as with the direct wrapper. INT, TERM
// and QUIT are trapped by this shell alone: it outlives a `systemctl kill` to report the command's own status.
const INNER = [
  "trap '' HUP",
  `eval "$(cat -- "$CREDENTIALS_DIRECTORY/${CREDENTIAL}")" || exit ${EXIT_WRAPPER}`,
  'unset CREDENTIALS_DIRECTORY',
  'umask 022',
  `cd -- "$1" || exit ${EXIT_NO_DIR}`,
  'shift',
  "trap ':' INT TERM QUIT",
  '"$@"',
  'exit "$?"'
].join('\n')

export interface TransientSpec {
  systemdRun: string
  shell: string
  runId: string
  identity: Identity
  envFile: string
  statusFile: string
  launchDir: string
  command: string[]
}

/** The transient unit of a launched run. Run ids are [0-9A-Za-z], so the name needs no escaping. */
export function unitName (runId: string): string {
  return `nf-secrets-launch-${runId}.service`
}

/** An argument of a unit's command line, with systemd's `$` expansion undone. */
export function execArg (arg: string): string {
  // split/join: in a replacement string `$$` would itself mean one `$`.
  return arg.split('$').join('$$')
}

/** A path as one word of a unit setting that systemd splits and unquotes (ExecStartPost=). */
function quotedWord (path: string): string {
  return `"${execArg(path).replace(/[\\"]/g, c => `\\${c}`)}"`
}

/** The argv (after the shell itself) of the wrapper that starts the command in a transient unit. */
export function transientArgs (spec: TransientSpec): string[] {
  const { uid, gid, gids } = spec.identity
  const groups = [...new Set(gids)].filter(g => Number.isSafeInteger(g) && g >= 0 && g !== gid)
  const run = [
    '--quiet', '--wait', '--collect',
    `--unit=${unitName(spec.runId)}`,
    `--description=nf-secrets launch ${spec.runId}`,
    // Counted with the user's other processes: a site's limits on user-<uid>.slice apply, as to a login.
    `--slice=user-${uid}.slice`,
    '--service-type=exec',
    '--property=StandardInput=tty-force', '--property=StandardOutput=tty', '--property=StandardError=tty',
    `--uid=${uid}`, `--gid=${gid}`,
    // systemd gives the user's groups from NSS, as a login would (initgroups); the caller's own (a `newgrp`) are added.
    `--property=SupplementaryGroups=${groups.join(' ')}`,
    // A shell's default: `yes | head` ends by SIGPIPE, not by an error message.
    '--property=IgnoreSIGPIPE=no',
    `--property=LoadCredential=${CREDENTIAL}:${spec.envFile}`,
    // `+`: as root, outside the unit's identity; the file lives in the daemon's private state dir.
    `--property=ExecStartPost=+/bin/rm -f -- ${quotedWord(spec.envFile)}`,
    '--'
  ]
  const inner = [spec.shell, '-c', INNER, 'nfs-run', spec.launchDir, ...spec.command].map(execArg)
  return ['-c', OUTER, 'nfs-launch', spec.envFile, spec.statusFile, spec.systemdRun, ...run, ...inner]
}

/**
 * systemd-run's path when this daemon should start launched commands through systemd: it runs as root, as the very
 * process systemd started for a unit of a booted systemd (SYSTEMD_EXEC_PID is its own pid: a daemon started by a
 * test or a shell that merely runs inside some unit inherits another pid). Null otherwise: the direct spawn.
 */
export function detectSystemdRun (env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? -1, pid = process.pid,
  candidates: readonly string[] = ['/usr/bin/systemd-run', '/bin/systemd-run']): string | null {
  if (uid !== 0 || env.SYSTEMD_EXEC_PID !== String(pid) || !existsSync('/run/systemd/system')) return null
  return candidates.find(p => existsSync(p)) ?? null
}

/**
 * Signal every process of a run's unit. False when systemd knows no such unit (the run was started directly, by an
 * older daemon, or its unit is gone already).
 */
export async function signalUnit (runId: string, signal: NodeJS.Signals, systemctl = 'systemctl'): Promise<boolean> {
  const r = await runChild(systemctl, ['kill', '--kill-who=all', `--signal=${signal}`, unitName(runId)], { deadlineMs: 15_000 })
  return r.code === 0
}
