// The command table and argument parsing of nf-secrets, pure. Each command-group module exports a list of Commands;
// commands.ts lists the groups, so a new group (run, arm, runs, launch, ...) is one new file and one line in its table.
// Usage errors never echo an argument back: a user who typed a value on the command line must not see it in an error.
import { parseArgs } from 'node:util'
import { nfsError } from '../errors.js'
import { closest } from './suggest.js'
import type { ApiClient } from './client.js'
import type { Output } from './output.js'

export interface OptionSpec {
  type: 'string' | 'boolean'
  short?: string
  multiple?: boolean
  /** one line for `COMMAND --help` (node's parseArgs ignores it) */
  description?: string
}
export type OptionSpecs = Record<string, OptionSpec>
export type OptionValues = Record<string, string | boolean | string[] | boolean[] | undefined>

export const GLOBAL_OPTIONS = {
  socket: { type: 'string', description: 'the daemon\'s socket (default: NF_SECRETS_SOCKET, your user daemon\'s, the system one)' },
  json: { type: 'boolean', description: 'answers, and errors on stderr, as JSON' },
  workspace: { type: 'string', short: 'w', description: 'the workspace (default: NF_SECRETS_WORKSPACE; none: your user secrets)' },
  help: { type: 'boolean', short: 'h', description: 'this help' },
  version: { type: 'boolean', description: 'the version of nf-secrets' }
} as const satisfies OptionSpecs

export interface GlobalOptions {
  socket?: string
  json: boolean
  workspace?: string
}

export interface CommandContext {
  /** positionals after the command's path */
  args: string[]
  /** the command's own options (globals are in `global`) */
  options: OptionValues
  global: GlobalOptions
  /** the daemon's socket (--socket, NF_SECRETS_SOCKET, the user socket, the system socket) */
  socketPath: string
  /** the API client, connected on first use so that `--help` and usage errors never need a daemon */
  client: () => ApiClient
  out: Output
  io: CliIo
}

/** What a command may touch of its process: injected so commands are testable without a terminal. */
export interface CliIo {
  stdin: NodeJS.ReadStream
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  env: NodeJS.ProcessEnv
  cwd: string
}

export interface Command {
  /** the words that name it: ['secrets', 'add'], ['status'] */
  path: string[]
  /** its arguments for the usage line: 'NAME [--value-file F] [--base64]' */
  usage: string
  summary: string
  options?: OptionSpecs
  /** [min, max] positionals after the path */
  positionals: [number, number]
  /** the usage error for too many positionals, when a generic one would mislead (a value typed as an argument) */
  extraPositionals?: string
  /**
   * everything from the first positional on is the command's verbatim (for `run [opts] [--] CMD ...`); 'options':
   * also from the first option nf-secrets does not know (for `sbatch [our opts] [SBATCH OPTIONS] SCRIPT ...`)
   */
  passthrough?: boolean | 'options'
  run: (ctx: CommandContext) => Promise<number | undefined>
}

export type Parsed =
  | { kind: 'command', command: Command, args: string[], options: OptionValues, global: GlobalOptions, help: boolean }
  | { kind: 'help', prefix: string[] }
  | { kind: 'version' }

/** A usage error; `suggestion` (a command or option of ours) is also a field of the error, for --json. */
function usage (message: string, suggestion?: string): Error {
  const err = nfsError('NFS_ERR_USAGE', [suggestion === undefined ? message : `${message}; did you mean ${suggestion}?`])
  if (suggestion !== undefined) (err as Error & { suggestion?: string }).suggestion = suggestion
  return err
}

/** The command path nearest to the words typed (`secret lsit` -> `secrets list`), for an unknown command. */
function suggestCommand (commands: readonly Command[], words: string[]): string | undefined {
  if (words.length === 0) return undefined
  const firsts = [...new Set(commands.map(c => c.path[0]!))]
  const first = firsts.includes(words[0]!) ? words[0]! : closest(words[0]!, firsts)
  if (first === undefined) return undefined
  const group = commands.filter(c => c.path[0] === first && c.path.length > 1)
  if (group.length === 0 || words.length < 2) return first
  const second = closest(words[1]!, group.map(c => c.path[1]!))
  return second === undefined ? (first === words[0] ? undefined : first) : `${first} ${second}`
}

/** The option nearest to an unknown one named in node's parseArgs message. */
function suggestOption (specs: OptionSpecs, message: string): string | undefined {
  const m = /'(--?[^'=\s]+)/.exec(message)
  if (m === null) return undefined
  const near = closest(m[1]!.replace(/^-+/, ''), Object.keys(specs))
  return near === undefined ? undefined : `--${near}`
}

function takesValue (specs: OptionSpecs, token: string): boolean {
  if (token.includes('=')) return false
  const spec = token.startsWith('--')
    ? specs[token.slice(2)]
    : Object.values(specs).find(s => s.short === token.slice(1) && token.length === 2)
  return spec?.type === 'string'
}

/** Indexes of the leading words of argv (skipping options and their values), up to the first `--`. */
function wordIndexes (argv: string[], specs: OptionSpecs, limit: number): number[] {
  const out: number[] = []
  for (let i = 0; i < argv.length && out.length < limit; i++) {
    const tok = argv[i]!
    if (tok === '--') break
    if (tok.startsWith('-') && tok !== '-') {
      if (takesValue(specs, tok)) i++
      continue
    }
    out.push(i)
  }
  return out
}

/** The first word of a command line (its group), skipping global options and their values. */
export function firstWord (argv: string[]): string | undefined {
  const [i] = wordIndexes(argv, GLOBAL_OPTIONS, 1)
  return i === undefined ? undefined : argv[i]
}

/** The command whose path is the longest match of argv's leading words, and the indexes of those words. */
export function matchCommand (commands: readonly Command[], argv: string[]): { command: Command, at: number[] } | { prefix: string[], words: string[] } {
  const depth = Math.max(...commands.map(c => c.path.length))
  const at = wordIndexes(argv, GLOBAL_OPTIONS, depth)
  const words = at.map(i => argv[i]!)
  for (let n = words.length; n > 0; n--) {
    const command = commands.find(c => c.path.length === n && c.path.every((w, i) => w === words[i]))
    if (command !== undefined) return { command, at: at.slice(0, n) }
  }
  // No full match: the longest prefix that names a group, for its help.
  for (let n = words.length; n > 0; n--) {
    if (commands.some(c => c.path.length > n && words.slice(0, n).every((w, i) => c.path[i] === w))) return { prefix: words.slice(0, n), words }
  }
  return { prefix: words.slice(0, 1), words }
}

function knows (specs: OptionSpecs, token: string): boolean {
  if (token.startsWith('--')) return specs[token.slice(2).split('=')[0]!] !== undefined
  return token.length === 2 && Object.values(specs).some(s => s.short === token.slice(1))
}

/** Split off the verbatim tail of a passthrough command: from the first positional or `--` on (or unknown option). */
function splitPassthrough (rest: string[], specs: OptionSpecs, atUnknown: boolean): { head: string[], tail: string[] } {
  for (let i = 0; i < rest.length; i++) {
    const tok = rest[i]!
    if (tok === '--') return { head: rest.slice(0, i), tail: rest.slice(i + 1) }
    if (tok.startsWith('-') && tok !== '-') {
      if (atUnknown && !knows(specs, tok)) return { head: rest.slice(0, i), tail: rest.slice(i) }
      if (takesValue(specs, tok)) i++
      continue
    }
    return { head: rest.slice(0, i), tail: rest.slice(i) }
  }
  return { head: rest, tail: [] }
}

export function parseCommandLine (commands: readonly Command[], argv: string[]): Parsed {
  const match = matchCommand(commands, argv)
  if (!('command' in match)) {
    const global = parseArgs({ args: argv, options: GLOBAL_OPTIONS, strict: false, allowPositionals: true }).values
    if (global.version === true && match.prefix.length === 0) return { kind: 'version' }
    if (global.help === true || argv.length === 0 || match.prefix.length > 0) {
      const known = match.prefix.length === 0 || commands.some(c => c.path[0] === match.prefix[0])
      if (!known) throw usage('unknown command; run nf-secrets --help for the list', suggestCommand(commands, match.words))
      if (global.help !== true && match.prefix.length > 0) {
        const unknown = match.words.length > match.prefix.length
        const what = unknown ? 'unknown subcommand of' : 'a subcommand is needed after'
        throw usage(`${what} ${match.prefix.join(' ')}; run nf-secrets ${match.prefix.join(' ')} --help`, unknown ? suggestCommand(commands, match.words) : undefined)
      }
      return { kind: 'help', prefix: match.prefix }
    }
    throw usage('unknown command; run nf-secrets --help for the list', suggestCommand(commands, match.words))
  }
  const { command, at } = match
  const specs: OptionSpecs = { ...GLOBAL_OPTIONS, ...command.options }
  const rest = argv.filter((_, i) => !at.includes(i))
  const { head, tail } = command.passthrough !== undefined && command.passthrough !== false ? splitPassthrough(rest, specs, command.passthrough === 'options') : { head: rest, tail: [] }
  let parsed
  try {
    parsed = parseArgs({ args: head, options: specs, strict: true, allowPositionals: true })
  } catch (err) {
    // node's parseArgs messages name the option only, never its value.
    const message = (err as Error).message
    throw usage(`${message.split('. ')[0] ?? 'invalid arguments'}; see nf-secrets ${command.path.join(' ')} --help`, suggestOption(specs, message))
  }
  const { socket, json, workspace, help, version: _version, ...own } = parsed.values as OptionValues
  const args = [...parsed.positionals, ...tail]
  const global: GlobalOptions = {
    json: json === true,
    ...(typeof socket === 'string' ? { socket } : {}),
    ...(typeof workspace === 'string' ? { workspace } : {})
  }
  if (help === true) return { kind: 'command', command, args, options: own, global, help: true }
  const [min, max] = command.positionals
  if (args.length > max) throw usage(command.extraPositionals ?? `${command.path.join(' ')} takes at most ${max} argument${max === 1 ? '' : 's'}, got ${args.length}; usage: nf-secrets ${command.path.join(' ')} ${command.usage}`)
  if (args.length < min) throw usage(`missing argument; usage: nf-secrets ${command.path.join(' ')} ${command.usage}`)
  return { kind: 'command', command, args, options: own, global, help: false }
}

export const HELP_WIDTH = 80

/** Pure: `text` wrapped at word boundaries to `width`, every line after the first indented by `indent`. */
export function wrap (text: string, width: number = HELP_WIDTH, first = '', indent = first.length): string[] {
  const lines: string[] = []
  let line = first
  let fresh = true
  for (const word of text.split(/\s+/).filter(w => w !== '')) {
    if (!fresh && line.length + 1 + word.length > width) {
      lines.push(line)
      line = ' '.repeat(indent) + word
    } else {
      line = fresh ? line + word : `${line} ${word}`
    }
    fresh = false
  }
  lines.push(line)
  return lines
}

/** The help text for the whole CLI or one group: each command, its usage and its summary, within 80 columns. */
export function helpText (commands: readonly Command[], prefix: string[]): string {
  const shown = commands.filter(c => prefix.every((w, i) => c.path[i] === w))
  const lines = shown.flatMap(c => [
    ...wrap(`${c.path.join(' ')} ${c.usage}`, HELP_WIDTH, '  ', 6),
    ...wrap(c.summary, HELP_WIDTH, '      ')
  ])
  return [
    ...wrap(`[--socket PATH] [--json] [-w WORKSPACE] ${prefix.length > 0 ? prefix.join(' ') + ' ' : ''}COMMAND ...`, HELP_WIDTH, 'Usage: nf-secrets ', 4),
    '',
    'Commands (nf-secrets help COMMAND, or COMMAND --help, for its options):',
    ...lines,
    '',
    ...wrap('Exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 permission denied, 5 conflict, 69 daemon not reachable, 78 configuration.', HELP_WIDTH)
  ].join('\n') + '\n'
}

function optionLines (specs: OptionSpecs): string[] {
  return Object.entries(specs).flatMap(([name, spec]) => {
    const flag = `${spec.short !== undefined ? `-${spec.short}, ` : ''}--${name}${spec.type === 'string' ? ' VALUE' : ''}`
    return [...wrap(flag, HELP_WIDTH, '  ', 6), ...(spec.description !== undefined ? wrap(spec.description, HELP_WIDTH, '      ') : [])]
  })
}

/** One command's help: usage, summary, its options and the global ones, within 80 columns. */
export function commandHelp (command: Command): string {
  const own = command.options ?? {}
  return [
    ...wrap(`${command.path.join(' ')} ${command.usage}`, HELP_WIDTH, 'Usage: nf-secrets ', 4),
    '',
    ...wrap(command.summary, HELP_WIDTH),
    ...(Object.keys(own).length > 0 ? ['', 'Options:', ...optionLines(own)] : []),
    '',
    'Global options:',
    ...optionLines(GLOBAL_OPTIONS)
  ].join('\n') + '\n'
}
