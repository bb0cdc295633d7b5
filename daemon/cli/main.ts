#!/usr/bin/env node
// nf-secrets: the client CLI. Parses the command line against the table of command groups, runs one command against
// the daemon's socket (loading only that command's module, commands.ts), prints errors as `nf-secrets: <message> (<CODE>)` and exits with the code's exit status.
// The only file of the CLI that exits the process.
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { EXIT, exitCodeFor } from '../errors.js'
import { packageVersion } from '../os/package-root.js'
import { commandHelp, firstWord, helpText, parseCommandLine, type CliIo, type Command } from './args.js'
import { discoverSocket, openClient, type ApiClient } from './client.js'
import { commandsFor } from './commands.js'
import { createOutput, safeText } from './output.js'
/** The message and exit status of anything a command threw. Messages come from coded errors, never from values. */
export function describeFailure (err: unknown, json = false): { line: string, exit: number } {
  const raw = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : undefined
  const code = raw !== undefined && raw.startsWith('NFS_ERR_') ? raw : 'NFS_ERR_INTERNAL'
  const message = safeText(err instanceof Error ? err.message : String(err))
  const exit = code === 'NFS_ERR_INTERNAL' && raw !== code ? EXIT.failure : exitCodeFor(code)
  if (json) {
    // The API's error object (SPEC section 7), one line: a script parses stderr as it parses an answer.
    const statusCode = (err as { statusCode?: unknown })?.statusCode
    const suggestion = (err as { suggestion?: unknown })?.suggestion
    return {
      line: JSON.stringify({ ...(typeof statusCode === 'number' ? { statusCode } : {}), code, message, ...(typeof suggestion === 'string' ? { suggestion } : {}) }),
      exit
    }
  }
  return { line: `nf-secrets: ${message} (${code})`, exit }
}

/** --json before any `--`: known before parsing, so that a usage error is JSON too. */
function wantsJson (argv: string[]): boolean {
  const end = argv.indexOf('--')
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json')
}

/** Run one command line; returns the exit status. Exported so that a test can drive it in-process. */
export async function runCli (argv: string[], io: CliIo, given?: readonly Command[]): Promise<number> {
  let client: ApiClient | null = null
  // `nf-secrets help COMMAND ...` is `nf-secrets COMMAND ... --help`.
  if (argv[0] === 'help') argv = [...argv.slice(1), '--help']
  try {
    const commands = given ?? await commandsFor(firstWord(argv))
    const parsed = parseCommandLine(commands, argv)
    if (parsed.kind === 'version') {
      io.stdout.write(`${packageVersion()}\n`)
      return EXIT.ok
    }
    if (parsed.kind === 'help') {
      io.stdout.write(helpText(commands, parsed.prefix))
      return EXIT.ok
    }
    if (parsed.help) {
      io.stdout.write(commandHelp(parsed.command))
      return EXIT.ok
    }
    const socketPath = discoverSocket(parsed.global.socket, io.env).path
    // NF_SECRETS_WORKSPACE is the default of -w; an explicit -w wins.
    const envWorkspace = io.env.NF_SECRETS_WORKSPACE
    const global = parsed.global.workspace === undefined && envWorkspace !== undefined && envWorkspace !== ''
      ? { ...parsed.global, workspace: envWorkspace }
      : parsed.global
    const status = await parsed.command.run({
      args: parsed.args,
      options: parsed.options,
      global,
      socketPath,
      client: () => (client ??= openClient(socketPath)),
      out: createOutput(parsed.global.json, io.stdout),
      io
    })
    return status ?? EXIT.ok
  } catch (err) {
    const { line, exit } = describeFailure(err, wantsJson(argv))
    io.stderr.write(`${line}\n`)
    return exit
  } finally {
    // Avoid TS narrowing `client` to null: it is assigned inside the closure above.
    await (client as ApiClient | null)?.close()
  }
}

/** Exit once stdout and stderr have drained, so piped output is never cut short. */
function exitWhenFlushed (status: number): void {
  process.exitCode = status
  let pending = 2
  const done = (): void => { if (--pending === 0) process.exit(status) }
  process.stdout.write('', done)
  process.stderr.write('', done)
}

/** Run as the program (also through npm's bin symlink), not imported by a test. */
function isMain (): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)
  } catch {
    return false
  }
}

if (isMain()) {
  runCli(process.argv.slice(2), {
    // A getter: process.stdin is made on first use, and making it for a file or /dev/null loads fs streams,
    // fs/promises and readline (about a fifth of a bare node's start-up), which only the commands that read stdin need.
    get stdin () { return process.stdin },
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd()
  }).then(exitWhenFlushed, (err: unknown) => {
    process.stderr.write(`${describeFailure(err).line}\n`)
    exitWhenFlushed(EXIT.failure)
  })
}
