// Nextflow's per-store export file, `.nf-<hash>.secrets`, and the line of a task's `.command.run` that sources it
// (NOTES.md 1.6: LocalSecretsProvider.getSecretsEnv and makeTempSecretsFile). Pure: `nf-secrets rerun` reads the line
// to learn which file and which names a task wants; the hpc target writes the file in Nextflow's own format.
//
// The line, inside nxf_main() of the wrapper, with the store's directory unquoted (hence SPEC 11's runsRoot rule):
//     source /dev/stdin <<<"$(cat <(grep -w -e 'A=.*' -e 'B=.*' /dir/of/store/.nf-<32 hex>.secrets))"
// The file: one `export NAME="value"` line per secret, only `$` escaped (SPEC 3 refuses the values this cannot carry).

/** What a task's wrapper sources: the export file's absolute path and the names it greps out of it. */
export interface SecretsSourcing {
  path: string
  names: string[]
}

// `.nf-<murmur3_128 hex>.secrets` today; `.nf-<uuid>.secrets` from the Nextflow releases of mid 2024 to Jan 2025.
const FILE_NAME_RE = /^\.nf-(?:[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.secrets$/
const SOURCE_RE = /^\s*source \/dev\/stdin <<<"\$\(cat <\(grep -w((?: -e '[A-Za-z0-9_]+=\.\*')+) (\S+)\)\)"\s*$/
const NAME_RE = /-e '([A-Za-z0-9_]+)=\.\*'/g

/**
 * The sourcing line of a `.command.run`; null when the task uses no secrets. More than one such line is not a wrapper
 * Nextflow wrote: refused (a TypeError naming why), as is a path that validSecretsFilePath refuses.
 */
export function parseSecretsSourcing (commandRun: string): SecretsSourcing | null {
  const found: SecretsSourcing[] = []
  for (const line of commandRun.split('\n')) {
    const m = SOURCE_RE.exec(line)
    if (m === null) continue
    const names = [...m[1]!.matchAll(NAME_RE)].map(n => n[1]!)
    found.push({ path: m[2]!, names: [...new Set(names)] })
  }
  if (found.length === 0) return null
  if (found.length > 1) throw new TypeError('more than one line sources a secrets file')
  const why = secretsFilePathProblem(found[0]!.path)
  if (why !== null) throw new TypeError(why)
  return found[0]!
}

/**
 * Why `path` cannot be a secrets file Nextflow names, or null: absolute, normal (no `.`, `..` or empty component),
 * no character a shell would split or expand (it stands unquoted in the wrapper), and a name of Nextflow's shape.
 */
export function secretsFilePathProblem (path: string): string | null {
  if (!path.startsWith('/')) return 'the secrets file path is not absolute'
  if (path.length > 4096) return 'the secrets file path is too long'
  const parts = path.split('/').slice(1)
  if (parts.some(p => p === '' || p === '.' || p === '..')) return 'the secrets file path is not in normal form'
  if (/[^A-Za-z0-9._+@%,:=/-]/.test(path)) return 'the secrets file path holds a character a shell would split or expand'
  if (!FILE_NAME_RE.test(parts[parts.length - 1]!)) return 'the file is not named .nf-<hash>.secrets'
  return null
}

/** The first line of a file nf-secretsd wrote for a rerun: what its removal checks before it unlinks anything. */
export function rerunMarkLine (runId: string): string {
  return `# nf-secretsd rerun ${runId}`
}

/**
 * The export file Nextflow's tasks source, for `entries`, headed by the rerun's mark (a comment: the wrapper's
 * `grep -w -e 'NAME=.*'` never picks it). Only `$` is escaped, as Nextflow's Escape.variable does.
 */
export function formatSecretsEnvFile (runId: string, entries: ReadonlyArray<{ name: string, value: string }>): string {
  const lines = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map(e => `export ${e.name}="${e.value.replace(/\$/g, '\\$')}"`)
  return `${[rerunMarkLine(runId), ...lines].join('\n')}\n`
}
