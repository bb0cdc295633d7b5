// `nf-secrets shell-init bash|zsh`: a `nextflow` shell function that sends `nextflow [global options] run ...`
// through `nf-secrets run`, every argument passed on unchanged, and leaves every other use of nextflow alone.
import { nfsError } from '../errors.js'
import type { Command } from './args.js'

/**
 * Nextflow's launcher options before the command (CliOptions.groovy and the `nextflow` launcher script, read at
 * 26.08; `-d`/`-dockerize` up to 23.09). Those that take the next word as their value; `-D` only when the pair is
 * a word of its own (`-D k=v`; `-Dk=v` is one word). `-syslog`'s value is optional (Launcher.normalizeArgs): it has
 * none when the next word is a command or an option.
 */
export const VALUE_OPTIONS = ['-c', '-config', '-C', '-log', '-trace', '-debug', '-D'] as const
/** Options after which Nextflow prints something and exits without running the command: never wrapped. */
export const EXIT_OPTIONS = ['-v', '-version', '-h', '-help', '-self-update', 'self-update', '-download'] as const
/** Nextflow's commands (Launcher.allCommands), for `-syslog` without a value. */
export const COMMANDS = ['auth', 'clean', 'clone', 'config', 'console', 'drop', 'fs', 'help', 'info', 'inspect', 'kuberun', 'lineage',
  'launch', 'lint', 'list', 'log', 'logfile', 'module', 'node', 'plugin', 'pull', 'run', 'secrets', 'self-update', 'view'] as const

/**
 * Does this argv (after `nextflow`) run a pipeline? The same walk as the shell function below, for a table test
 * that keeps the two in step. Pure.
 */
export function isRunInvocation (args: readonly string[]): boolean {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if ((VALUE_OPTIONS as readonly string[]).includes(a)) {
      if (i + 1 >= args.length) return false
      i++
    } else if (a === '-syslog') {
      const next = args[i + 1]
      if (next !== undefined && !next.startsWith('-') && !(COMMANDS as readonly string[]).includes(next)) i++
    } else if ((EXIT_OPTIONS as readonly string[]).includes(a)) {
      return false
    } else if (a.startsWith('-')) {
      // a flag (-bg, -q, -quiet, -Dk=v, -remote-debug, -config-ignore-includes, -dockerize) or one Nextflow refuses
    } else {
      return a === 'run'
    }
  }
  return false
}

const words = (list: readonly string[]): string => list.join('|')

/**
 * POSIX sh that bash and zsh run alike: `case`, `shift` and `"$@"` only (no arrays, whose indexes differ), no
 * locals. `shift 2` is guarded: with too few words bash leaves them in place and zsh errors.
 */
export function shellInit (shell: 'bash' | 'zsh'): string {
  return `# nf-secrets: \`nextflow [global options] run ...\` gets its secrets for the run's lifetime; every other use of
# nextflow, and a run already inside one, is untouched. Arguments are passed on unchanged.
# Add to your shell's rc file: eval "$(nf-secrets shell-init ${shell})"
__nf_secrets_is_run() {
  while [ "$#" -gt 0 ]; do
    case "$1" in
      ${words(VALUE_OPTIONS)})
        [ "$#" -ge 2 ] || return 1
        shift 2
        continue ;;
      -syslog)
        shift
        case "\${1-}" in
          ''|-*|${words(COMMANDS)}) ;;
          *) shift ;;
        esac
        continue ;;
      ${words(EXIT_OPTIONS)}) return 1 ;;
      -*) ;;
      run) return 0 ;;
      *) return 1 ;;
    esac
    shift
  done
  return 1
}
nextflow() {
  if [ -z "\${NF_SECRETS_RUN_ID-}" ] && __nf_secrets_is_run "$@"; then
    command nf-secrets run -- nextflow "$@"
  else
    command nextflow "$@"
  fi
}
`
}

export const shellInitCommand: Command = {
  path: ['shell-init'],
  usage: 'bash|zsh',
  summary: 'print a shell function so that `nextflow [options] run ...` goes through nf-secrets run',
  positionals: [1, 1],
  async run (ctx) {
    const shell = ctx.args[0]
    if (shell !== 'bash' && shell !== 'zsh') throw nfsError('NFS_ERR_USAGE', ['shell-init takes bash or zsh'])
    ctx.io.stdout.write(shellInit(shell))
    return 0
  }
}
