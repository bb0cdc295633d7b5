// Wiring: everything the daemon runs, built in order and stopped in the reverse order (STYLE habit 6).
import { realpath } from 'node:fs/promises'
import { hostname } from 'node:os'
import { setTimeout as delay } from 'node:timers/promises'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Config, Flags } from './config.js'
import { loadConfig } from './config.js'
import { createLogger, type Logger } from './logger.js'
import { EventBus } from './events.js'
import { buildServer } from './server.js'
import { ensureNodeId, ensureStateDir, lockStateDir, stateDirWarnings, runsRootInside, type StateDirLock } from './os/state-dir.js'
import { listenInPlace, prepareSocketPath, removeSocket } from './os/socket.js'
import { UserDirectory } from './identity/users.js'
import { peerIdentifier, readPeer } from './identity/peer.js'
import { native } from './os/native.js'
import { ConnectionGate } from './os/connection-gate.js'
import { loadKey } from './store/key.js'
import { openSecretsStoreAside, type SecretsStore } from './store/secrets-store.js'
import { openAuditLog, type AuditLog } from './store/audit-log.js'
import { packageVersion } from './os/package-root.js'
import { listenFds } from './os/listen-fds.js'
import { openRunLedger } from './store/run-ledger.js'
import { DeferredRecords } from './runs/deferred-records.js'
import { knownRunUsers } from './runs/archiving.js'
import { fileJournal } from './store/deferred-journal.js'
import { buildTargets } from './targets.js'
import { RunManager } from './runs/manager.js'
import { DirWatchService } from './watch/watch-service.js'
import { realProbes } from './runs/probes.js'
import { createCheckpoints } from './nextflow/history-checkpoints.js'
import { PtyHost } from './pty/host.js'
import type { Monitor } from './runs/monitor.js'
import { createMetrics } from './metrics.js'
import { readMountFsType } from './os/fs-type.js'
import type { ClusterBackend } from './cluster/backend.js'

/** Cluster mode (CLUSTER.md): the etcd backends, loaded only with a `cluster` section; null keeps the local files. */
async function openCluster (config: Config, key: Buffer, logger: Logger): Promise<ClusterBackend | null> {
  if (config.cluster === undefined) return null
  const { openClusterBackend } = await import('./cluster/backend.js')
  return await openClusterBackend({ cluster: config.cluster, stateDir: config.stateDir, key, version: packageVersion(), logger })
}

export interface RunningDaemon {
  app: FastifyInstance
  logger: Logger
  stop (reason: string): Promise<void>
  reload (): Promise<void>
}

/** What SIGHUP can apply live; every other change waits for a restart (and the reload says which). */
const LIVE_KEYS = new Set(['logLevel', 'watch'])
const STOP_WAIT_MS = 10_000

export function restartNeeded (running: Config, next: Config): string[] {
  return Object.keys(next).filter(k => !LIVE_KEYS.has(k) && JSON.stringify((running as Record<string, unknown>)[k]) !== JSON.stringify((next as Record<string, unknown>)[k]))
}

export interface StartOptions {
  /** the command line's flags: a reload reads the config file again and lays them over it, as the start did */
  flags?: Flags
}

export async function startDaemon (config: Config, options: StartOptions = {}): Promise<RunningDaemon> {
  native() // the addon, or NFS_ERR_ADDON (exit 78) before anything is read: never a "could not be identified" later
  // One daemon per state dir, decided before anything in it is read or reconciled (SPEC 11).
  const traversable = config.mode === 'system' && runsRootInside(config.stateDir, config.hpc.runsRoot)
  const lock = await lockStateDir(config.stateDir, hostname(), undefined, traversable ? 0o711 : 0o700)
  try {
    return await startLocked(config, options, lock)
  } catch (err) {
    lock.release()
    throw err
  }
}

async function startLocked (config: Config, options: StartOptions, lock: StateDirLock): Promise<RunningDaemon> {
  const logger = createLogger(config.logLevel)
  const log = logger.child({ room: 'main' })
  const startedAt = new Date()
  const traversable = config.mode === 'system' && runsRootInside(config.stateDir, config.hpc.runsRoot)
  const { changed } = await ensureStateDir(config.stateDir, traversable)
  if (changed) log.warn({ dir: config.stateDir, mode: traversable ? '0711' : '0700' }, 'state dir mode corrected')
  const storePath = join(config.stateDir, 'store.json')
  const key = await loadKey({
    mode: config.mode,
    stateDir: config.stateDir,
    ...(config.keyFile !== null && config.mode === 'system' ? { keyFile: config.keyFile } : {}),
    ...(process.env.CREDENTIALS_DIRECTORY !== undefined ? { credentialsDirectory: process.env.CREDENTIALS_DIRECTORY } : {}),
    storePath
  })
  log.info({ source: key.source, generated: key.generated }, 'encryption key loaded')
  const cluster = await openCluster(config, key.key, logger)
  // A big store's values are verified in a worker while the ledger loads (verify-aside.ts); awaited below, before
  // anything acts on runs: a broken store still stops the start with exit 78, the socket never made.
  const opened = cluster !== null ? { store: cluster.store, verified: Promise.resolve() } : await openSecretsStoreAside({ path: storePath, key: key.key, logger: logger.child({ room: 'store' }) })
  const store: SecretsStore = opened.store
  const audit: AuditLog = await openAuditLog(join(config.stateDir, 'audit.log'))
  const events = new EventBus()
  const daemonUid = process.getuid?.() ?? 0
  const users = new UserDirectory({ mode: config.mode, adminGroup: config.adminGroup, daemonUid, nss: native() })
  const host = hostname()
  const clock = (): Date => new Date()
  // The revoke path's records wait in memory while the ledger cannot write them (DeferredRecords: a full disk, a
  // cluster without quorum); the ledgers themselves only write.
  // In a cluster they are journaled too: a restart during a quorum loss must not forget a revoke done meanwhile.
  const journal = cluster !== null ? { journal: fileJournal(join(config.stateDir, 'ledger-journal.json')), onJournalError: (err: unknown) => { log.error({ err }, 'ledger journal not written; the records stay in memory') } } : {}
  const ledger = await DeferredRecords.open(cluster?.ledger ?? await openRunLedger(join(config.stateDir, 'runs.json')), journal)
  await opened.verified
  // secret.* and run.* events come from the change feeds, whichever node wrote the change.
  events.follow({ store, ledger, ...(cluster !== null ? { roots: cluster.watchRoots } : {}) })
  const { targets, aws } = buildTargets(config, logger, host, await ensureNodeId(config.stateDir), knownRunUsers(ledger, log))
  // Where long launch-dir histories are read from (history-checkpoints.ts): one for the monitor and the auto-runs.
  const histories = createCheckpoints()
  const probes = realProbes(histories)
  // The watcher and the monitor are made after the metrics (the watcher reports to them); read at scrape time.
  const watched: { service?: DirWatchService, monitor?: Monitor } = {}
  const metrics = createMetrics({
    passes: () => watched.monitor?.passes ?? 0,
    ledger,
    aws: () => aws.stats(),
    watches: () => watched.service?.summary(),
    targets: [...targets.keys()],
    version: packageVersion(),
    mode: config.mode
  })
  const runs = new RunManager({ config, ledger, store, audit, events, targets, logger, clock, host, probes, observer: metrics.observer, ...(cluster !== null ? { ownership: cluster.ownership } : {}) })
  const monitor = runs.createMonitor({ intervalMs: config.runs.livenessIntervalMs, retentionDays: config.runs.retentionDays })
  watched.monitor = monitor
  const pty = new PtyHost({ runs, config, logger, probes, daemonUid, clock })
  runs.setHost(pty)
  // Launched runs outlive a restart: adopt them first, so one that ended meanwhile ends with its recorded status.
  await pty.adopt()
  // Before serving: runs that ended while the daemon was down are revoked, interrupted provisions undone.
  await monitor.reconcile()
  monitor.start()
  // Runs of a node that left are taken over here too; an adopted run is checked at once, then with the others.
  cluster?.startAdopting(ids => { for (const id of ids) void monitor.checkRun(id) })
  // Watch roots and the launch dirs of live runs: file events end runs at once, the monitor stays the floor.
  const watches = await DirWatchService.open({ config, runs, workspaces: store, monitor, users, events, logger, clock, histories, deferWalks: true, ...(cluster !== null ? { roots: cluster.watchRoots } : {}) })
  watched.service = watches

  const app = await buildServer({
    config,
    logger,
    store,
    audit,
    events,
    users,
    identify: peerIdentifier(users),
    clock,
    version: packageVersion(),
    startedAt,
    runs,
    watches,
    pty,
    metrics,
    node: cluster?.node ?? host,
    ...(cluster !== null ? { cluster: { status: async () => await cluster.status(), ownerOf: (id: string) => cluster.ownerOf(id) } } : {}),
    stateWarnings: stateDirWarnings({
      stateDir: config.stateDir,
      fsType: await readMountFsType(await realpath(config.stateDir)),
      previousHost: lock.previousHost,
      host,
      system: config.mode === 'system'
    })
  })
  // Per-uid connection limit and idle timeout, at accept (SPEC 11); the peer is read there once for every request.
  new ConnectionGate({
    perUid: config.limits.connectionsPerUid,
    idleMs: config.limits.idleTimeoutSeconds * 1000,
    peer: readPeer,
    isAdmin: (cred) => users.callerFor(cred).isAdmin,
    log: logger.child({ room: 'api' })
  }).install(app.server)

  // systemd socket activation hands us the listening socket as fd 3; otherwise we make our own.
  const inherited = listenFds(process.env, process.pid)
  // As sd_listen_fds(1) does: the children the daemon starts (launched runs) must not think the socket is theirs.
  for (const name of ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES']) Reflect.deleteProperty(process.env, name)
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
    // Private from the first instant, opened up in system mode (every caller is told apart by uid), and at its path
    // only once it has that mode.
    await listenInPlace(config.socket, config.mode, async (at) => { await app.listen({ path: at }) })
    ownSocket = config.socket
    log.info({ socket: config.socket, mode: config.mode, host: hostname() }, 'listening')
  }
  // The watch roots are walked from now on, however large: /health answers first.
  watches.startWalks()

  // Sweeps ask remote services (AWS): they run in the background, at start and then periodically.
  const sweep = (): void => { runs.sweep().catch((err: unknown) => log.warn({ err }, 'sweep failed; it runs again later')) }
  sweep()
  const sweepTimer = setInterval(sweep, config.aws.sweepIntervalSeconds * 1000)
  sweepTimer.unref()

  let stopped: Promise<void> | null = null
  return {
    app,
    logger,
    stop (reason: string): Promise<void> {
      stopped ??= (async () => {
        log.info({ reason }, 'stopping')
        clearInterval(sweepTimer)
        await app.close()
        // Terminals are let go, commands are not signalled: they go on and the next daemon adopts them.
        await pty.close()
        await watches.stop()
        // A revoke in flight (AWS under throttling) may take longer than systemd waits (TimeoutStopSec=20): stop
        // waiting for it after a while. Its target is still `revoking` in the ledger, so the next start finishes it.
        const settled = await Promise.race([monitor.stop().then(() => true), delay(STOP_WAIT_MS, false, { ref: false })])
        if (!settled) log.warn({ waitedMs: STOP_WAIT_MS }, 'a revoke was still in flight at stop; the next start finishes it')
        await ledger.close()
        for (const t of targets.values()) await t.close()
        await store.close()
        // The lease is left to expire by itself (CLUSTER.md): a restart within the TTL takes the runs back.
        await cluster?.close()
        await audit.close()
        if (ownSocket !== null) await removeSocket(ownSocket)
        lock.release()
        log.info('stopped')
        logger.flush()
      })()
      return stopped
    },
    async reload (): Promise<void> {
      try {
        const next = await loadConfig({ ...options.flags, mode: config.mode, ...(config.configFile !== null ? { config: config.configFile } : {}) })
        // The watcher applies the new watch roots itself; connections stay as they are.
        await watches.reload(next)
        logger.level = next.logLevel
        const pending = restartNeeded(config, next)
        if (pending.length > 0) log.warn({ keys: pending }, 'these changes take effect at the next restart')
        log.info({ logLevel: next.logLevel }, 'config reloaded')
      } catch (err) {
        log.error({ err }, 'config reload failed; keeping the running config')
      }
    }
  }
}
