// Wiring: everything the daemon runs, built in order and stopped in the reverse order (STYLE habit 6).
import { hostname } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Config } from './config.js'
import { loadConfig } from './config.js'
import { createLogger, type Logger } from './logger.js'
import { EventBus } from './events.js'
import { buildServer } from './server.js'
import { ensureStateDir } from './state-dir.js'
import { prepareSocketPath, removeSocket, socketMode } from './socket.js'
import { UserDirectory } from './identity/users.js'
import { peerIdentifier, recordPeers } from './identity/peer.js'
import { loadKey } from './store/key.js'
import { openSecretsStore, type SecretsStore } from './store/secrets-store.js'
import { openAuditLog, type AuditLog } from './store/audit-log.js'
import { packageVersion } from './package-root.js'
import { listenFds } from './listen-fds.js'

export interface RunningDaemon {
  app: FastifyInstance
  logger: Logger
  stop (reason: string): Promise<void>
  reload (): Promise<void>
}

export async function startDaemon (config: Config): Promise<RunningDaemon> {
  const logger = createLogger(config.logLevel)
  const log = logger.child({ room: 'main' })
  const startedAt = new Date()
  const { tightened } = await ensureStateDir(config.stateDir)
  if (tightened) log.warn({ dir: config.stateDir }, 'state dir was wider than 0700; tightened')
  const storePath = join(config.stateDir, 'store.json')
  const key = await loadKey({
    mode: config.mode,
    stateDir: config.stateDir,
    ...(config.keyFile !== null && config.mode === 'system' ? { keyFile: config.keyFile } : {}),
    ...(process.env.CREDENTIALS_DIRECTORY !== undefined ? { credentialsDirectory: process.env.CREDENTIALS_DIRECTORY } : {}),
    storePath
  })
  log.info({ source: key.source, generated: key.generated }, 'encryption key loaded')
  const store: SecretsStore = await openSecretsStore({ path: storePath, key: key.key, logger: logger.child({ room: 'store' }) })
  const audit: AuditLog = await openAuditLog(join(config.stateDir, 'audit.log'))
  const events = new EventBus()
  const daemonUid = process.getuid?.() ?? 0
  const users = new UserDirectory({ mode: config.mode, adminGroup: config.adminGroup, daemonUid })

  const app = await buildServer({
    config,
    logger,
    store,
    audit,
    events,
    users,
    identify: peerIdentifier(users),
    clock: () => new Date(),
    version: packageVersion(),
    startedAt
  })
  recordPeers(app.server)

  // systemd socket activation hands us the listening socket as fd 3; otherwise we make our own.
  const inherited = listenFds(process.env, process.pid)
  let ownSocket: string | null = null
  if (inherited.length > 0) {
    await app.ready()
    await new Promise<void>((resolve, reject) => {
      app.server.once('error', reject)
      app.server.listen({ fd: inherited[0] }, () => { app.server.off('error', reject); resolve() })
    })
    log.info({ fd: inherited[0] }, 'listening on a socket from systemd')
  } else {
    await prepareSocketPath(config.socket, config.mode)
    // The socket is created with the process umask: make it private from the first instant, then open it up in
    // system mode, where every caller is told apart by uid.
    const old = process.umask(0o177)
    try {
      await app.listen({ path: config.socket })
    } finally {
      process.umask(old)
    }
    await socketMode(config.socket, config.mode)
    ownSocket = config.socket
    log.info({ socket: config.socket, mode: config.mode, host: hostname() }, 'listening')
  }

  let stopped: Promise<void> | null = null
  return {
    app,
    logger,
    stop (reason: string): Promise<void> {
      stopped ??= (async () => {
        log.info({ reason }, 'stopping')
        await app.close()
        await store.close()
        await audit.close()
        if (ownSocket !== null) await removeSocket(ownSocket)
        log.info('stopped')
        logger.flush()
      })()
      return stopped
    },
    async reload (): Promise<void> {
      try {
        const next = await loadConfig({ mode: config.mode, ...(config.configFile !== null ? { config: config.configFile } : {}) })
        logger.level = next.logLevel
        log.info({ logLevel: next.logLevel }, 'config reloaded')
      } catch (err) {
        log.error({ err }, 'config reload failed; keeping the running config')
      }
    }
  }
}
