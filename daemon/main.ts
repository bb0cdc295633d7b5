#!/usr/bin/env node
// nf-secretsd: flags, config, build, listen, signals. The only file that exits the process.
import { parseArgs } from 'node:util'
import { EXIT, exitCodeFor, isCoded } from './errors.js'
import { loadConfig, type Flags } from './config.js'
import { packageVersion } from './os/package-root.js'
import { startDaemon } from './daemon.js'
import { rotateKeyCommand } from './store/rotate-key-command.js'

const USAGE = `Usage: nf-secretsd [--mode user|system] [--config F] [--socket P] [--state-dir D] [--log-level L] [--node-name N]
       nf-secretsd check-config [same flags]
       nf-secretsd rotate-key [same flags] [--new-key-file F]
       nf-secretsd cluster import [same flags]   (copy this state dir's store, live runs and watch roots into an empty cluster)
       nf-secretsd cluster import watches [same flags]   (copy only this state dir's watch roots into a running cluster)
       nf-secretsd --version`

/**
 * The AWS SDK warns on every start that it will drop Node 20 in 2027: on a service's stderr (the journal) that is
 * noise an admin cannot act on per daemon. Only that warning is dropped; every other one is printed as usual.
 */
function isSdkNodeVersionWarning (warning: string | Error, options?: unknown): boolean {
  const text = typeof warning === 'string' ? warning : `${warning.name}: ${warning.message}`
  const type = typeof options === 'string' ? options : (options as { type?: string } | undefined)?.type
  return type === 'NodeVersionSupportWarning' || /^(Warning: )?NodeVersionSupportWarning\b/.test(text)
}

function quietSdkNodeVersionWarning (): void {
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    if (isSdkNodeVersionWarning(warning, rest[0])) return
    emit(warning, ...rest)
  }) as typeof process.emitWarning
}

function fail (err: unknown): never {
  const code = isCoded(err) ? err.code : undefined
  const message = err instanceof Error ? err.message : String(err)
  process.stderr.write(`nf-secretsd: ${message}${code !== undefined ? ` (${code})` : ''}\n`)
  process.exit(code !== undefined ? exitCodeFor(code) : EXIT.failure)
}

async function main (argv: string[]): Promise<void> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        mode: { type: 'string' },
        config: { type: 'string' },
        socket: { type: 'string' },
        'state-dir': { type: 'string' },
        'log-level': { type: 'string' },
        'node-name': { type: 'string' },
        'new-key-file': { type: 'string' },
        version: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      }
    })
  } catch (err) {
    process.stderr.write(`nf-secretsd: ${(err as Error).message}\n${USAGE}\n`)
    process.exit(EXIT.usage)
  }
  const { values, positionals } = parsed
  if (values.version === true) {
    process.stdout.write(`${packageVersion()}\n`)
    return
  }
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`)
    return
  }
  if (values.mode !== undefined && values.mode !== 'user' && values.mode !== 'system') {
    process.stderr.write(`nf-secretsd: --mode must be user or system\n${USAGE}\n`)
    process.exit(EXIT.usage)
  }
  const flags: Flags = {
    ...(values.mode !== undefined ? { mode: values.mode as 'user' | 'system' } : {}),
    ...(values.config !== undefined ? { config: values.config } : {}),
    ...(values.socket !== undefined ? { socket: values.socket } : {}),
    ...(values['state-dir'] !== undefined ? { stateDir: values['state-dir'] } : {}),
    ...(values['log-level'] !== undefined ? { logLevel: values['log-level'] } : {}),
    ...(values['node-name'] !== undefined ? { nodeName: values['node-name'] } : {})
  }
  const command = positionals[0]
  const clusterImport = command === 'cluster' && positionals[1] === 'import' && (positionals.length === 2 || (positionals.length === 3 && positionals[2] === 'watches'))
  if (!clusterImport && (positionals.length > 1 || (command !== undefined && command !== 'check-config' && command !== 'rotate-key'))) {
    process.stderr.write(`nf-secretsd: unknown command ${JSON.stringify(positionals.join(' '))}\n${USAGE}\n`)
    process.exit(EXIT.usage)
  }
  try {
    const config = await loadConfig(flags)
    if (command === 'check-config') {
      // The key too: "ok" with a missing or unreadable key would promise a start that then fails (exit 78 here).
      const { checkKey } = await import('./store/key.js')
      const key = await checkKey({
        mode: config.mode,
        stateDir: config.stateDir,
        ...(config.keyFile !== null && config.mode === 'system' ? { keyFile: config.keyFile } : {}),
        ...(process.env.CREDENTIALS_DIRECTORY !== undefined ? { credentialsDirectory: process.env.CREDENTIALS_DIRECTORY } : {})
      })
      process.stdout.write(`${JSON.stringify({ ok: true, mode: config.mode, file: config.configFile, key, config }, null, 2)}\n`)
      return
    }
    if (clusterImport) {
      const { clusterImportCommand } = await import('./cluster/import-command.js')
      process.stdout.write(`${JSON.stringify(await clusterImportCommand(config, positionals[2] === 'watches' ? 'watches' : 'all'))}\n`)
      return
    }
    if (command === 'rotate-key') {
      const result = await rotateKeyCommand(config, values['new-key-file'])
      process.stdout.write(`${JSON.stringify(result)}\n`)
      return
    }
    quietSdkNodeVersionWarning()
    const daemon = await startDaemon(config, { flags })
    // A rejection no code path caught (a bug) is logged, and the daemon goes on serving everyone: the failure of one
    // request or one run must not take every user's secrets service down with it.
    process.on('unhandledRejection', (err) => { daemon.logger.error({ err }, 'unhandled rejection; contained') })
    let stopping = false
    const stop = (signal: string): void => {
      if (stopping) return
      stopping = true
      daemon.stop(signal).then(() => process.exit(EXIT.ok), (err: unknown) => {
        process.stderr.write(`nf-secretsd: shutdown failed: ${(err as Error).message}\n`)
        process.exit(EXIT.failure)
      })
    }
    process.on('SIGTERM', () => stop('SIGTERM'))
    process.on('SIGINT', () => stop('SIGINT'))
    process.on('SIGHUP', () => { daemon.reload().catch(() => {}) })
  } catch (err) {
    fail(err)
  }
}

main(process.argv.slice(2)).catch(fail)
