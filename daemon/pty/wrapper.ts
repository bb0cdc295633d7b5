// How a launched command is started, as pure functions: the argv of the wrapper, the environment file it reads,
// and the meaning of the exit status it leaves behind.
//
// The process tree under the PTY is: wrapper (`/bin/sh`, as the daemon's user) -> [setpriv, dropping to the caller]
// -> `/bin/sh` (as the caller) -> exec the command. The wrapper
//  - ignores SIGHUP before anything starts, so the command inherits SIG_IGN and survives the hangup sent when the
//    PTY master closes (a daemon restart); this is how `nohup` works, and a JVM leaves SIGHUP alone when it
//    starts ignored, so Nextflow survives too;
//  - traps (does not ignore) INT/TERM/QUIT, so it outlives a signal to the process group long enough to
//    record the command's status, while the command keeps the default handlers;
//  - writes the exit status to a file in a directory only the daemon's user can reach, so a restarted daemon
//    ends an adopted run with its real status.
// The wrapper starts with a fixed, clean environment: the caller's environment reaches the command through a file
// read on fd 3 only after privileges are dropped (LD_PRELOAD & co. must never reach a root process).
// It starts with exactly fds 0, 1 and 2 (the terminal) kept: anything else it inherited is closed before the command
// starts, since another session's pty master in a command's hands means typing into that session as its user. A
// POSIX shell can close fds 3-9 only (dash reads `exec 12<&-` as a command named 12), so an inherited fd of 10 or
// more stops the wrapper with EXIT_WRAPPER before anything runs. The daemon marks all its fds close-on-exec before
// each spawn, so this check never finds one; it stands for whatever a future change (or a library) might leak.
import { constants } from 'node:os'

export const CLEAN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
/** The wrapper's exit status when it could not start the command stage at all. */
export const EXIT_WRAPPER = 125
/** ... when the caller cannot enter the launch dir at spawn time. */
export const EXIT_NO_DIR = 126

// Close fds 3-9; any other fd still open (the glob's own directory fd is closed again once the list is made) is
// refused. Without /proc the glob stays literal and nothing is checked: the daemon's close-on-exec holds alone.
export const CLOSE_INHERITED = `for f in /proc/self/fd/*; do n=\${f##*/}; case $n in 0|1|2) ;; [3-9]) eval "exec $n<&-" ;; *) [ ! -e "$f" ] || exit ${EXIT_WRAPPER} ;; esac; done`

// $1 env file, $2 status file, then the command stage's argv.
const OUTER = [
  CLOSE_INHERITED,
  "trap '' HUP",
  "trap ':' INT TERM QUIT",
  'umask 077',
  'envfile=$1; statusfile=$2; shift 2',
  `exec 3<"$envfile" || exit ${EXIT_WRAPPER}`,
  'rm -f -- "$envfile"',
  '"$@"',
  'st=$?',
  'exec 3<&-',
  'printf \'%s\\n\' "$st" > "$statusfile"',
  'exit "$st"'
].join('\n')

// As the caller: $1 the launch dir, then the command.
const INNER = [
  `eval "$(cat <&3)" || exit ${EXIT_WRAPPER}`,
  'exec 3<&-',
  'umask 022',
  `cd -- "$1" || exit ${EXIT_NO_DIR}`,
  'shift',
  'exec "$@"'
].join('\n')

// Names a POSIX shell cannot export, or that bash-as-sh holds read-only (an export would abort the script).
const RESERVED = new Set(['UID', 'EUID', 'PPID', 'SHELLOPTS', 'BASHOPTS', 'BASH_VERSINFO', 'BASH_ARGV0', 'GROUPS'])
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

export interface Identity {
  uid: number
  gid: number
  gids: number[]
}

export interface WrapperSpec {
  shell: string
  /** absolute path of setpriv, or null when no identity change is needed (user mode, or a root caller) */
  setpriv: string | null
  identity: Identity
  envFile: string
  statusFile: string
  launchDir: string
  command: string[]
}

const TERM_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/
export const DEFAULT_TERM = 'xterm-256color'

/**
 * The TERM node-pty puts in the wrapper's own environment (the root shell's, in system mode): the caller's value only
 * when it looks like a terminfo name. The command gets the caller's TERM through the environment file anyway.
 */
export function terminalName (term: string | undefined): string {
  return term !== undefined && TERM_NAME.test(term) ? term : DEFAULT_TERM
}

/** The argv (after the shell itself) of the wrapper. Nothing secret: paths and the caller's own command. */
export function wrapperArgs (spec: WrapperSpec): string[] {
  const drop = spec.setpriv === null ? [] : [spec.setpriv, ...privilegeArgs(spec.identity), '--']
  return ['-c', OUTER, 'nfs-launch', spec.envFile, spec.statusFile, ...drop, spec.shell, '-c', INNER, 'nfs-run', spec.launchDir, ...spec.command]
}

/** setpriv's flags for the caller: real and effective uid and gid, and every supplementary group. */
export function privilegeArgs (id: Identity): string[] {
  const groups = [...new Set([id.gid, ...id.gids])].filter(g => Number.isSafeInteger(g) && g >= 0)
  return [`--reuid=${id.uid}`, `--regid=${id.gid}`, `--groups=${groups.join(',')}`]
}

function quote (value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`
}

/**
 * The environment file the caller's shell evaluates: one `export NAME='value'` line per variable. Names a shell
 * cannot carry are dropped (reported back), values are single-quoted so nothing in them is interpreted.
 */
export function envFileText (env: Record<string, string>): { text: string, dropped: string[] } {
  const lines: string[] = []
  const dropped: string[] = []
  for (const [name, value] of Object.entries(env)) {
    if (!NAME.test(name) || RESERVED.has(name) || value.includes('\0')) {
      dropped.push(name)
      continue
    }
    lines.push(`export ${name}=${quote(value)}`)
  }
  return { text: lines.join('\n') + '\n', dropped }
}

export interface ExitStatus {
  exitCode: number
  signal: string | null
}

/** A shell status (as the wrapper records it, 128+N for a signal) as an exit code and a signal name. */
export function exitFromStatus (status: number): ExitStatus {
  if (status > 128 && status <= 128 + 64) {
    const name = Object.entries(constants.signals).find(([, n]) => n === status - 128)?.[0]
    if (name !== undefined) return { exitCode: status, signal: name }
  }
  return { exitCode: status, signal: null }
}

/** The status file's text, or null when it does not hold one status. */
export function parseStatusFile (text: string): number | null {
  const m = /^(\d{1,3})\n?$/.exec(text)
  if (m === null) return null
  const n = Number(m[1])
  return n <= 255 ? n : null
}

/** node-pty's view of the wrapper's end (a signal number when killed outright, e.g. by SIGKILL). */
export function exitFromPty (exitCode: number, signal: number | undefined): ExitStatus {
  if (signal !== undefined && signal > 0) {
    const name = Object.entries(constants.signals).find(([, n]) => n === signal)?.[0] ?? `SIG${signal}`
    return { exitCode: 128 + signal, signal: name }
  }
  return exitFromStatus(exitCode)
}
