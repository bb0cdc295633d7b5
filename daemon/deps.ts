// What buildServer and the rooms are handed by main.ts (STYLE habit 1: no module-level singletons).
import type { FastifyRequest } from 'fastify'
import type { Config } from './config.js'
import type { Logger } from './logger.js'
import type { EventBus } from './events.js'
import type { SecretsStore } from './store/secrets-store.js'
import type { AuditLog } from './store/audit-log.js'
import type { UserDirectory } from './identity/users.js'
import type { Caller } from './types.js'
import type { RunService } from './runs/service.js'
import type { WatchService } from './watch/watch-service.js'
import type { PtyHost } from './pty/host.js'
import type { StatusWarning } from '../adapters/types.js'
import type { ClusterStatus } from './contract/system.js'

export interface MetricsEndpoint {
  contentType: string
  render (): Promise<string>
}

export interface ServerDeps {
  config: Config
  logger: Logger
  store: SecretsStore
  audit: AuditLog
  events: EventBus
  users: UserDirectory
  identify: (request: FastifyRequest) => Caller
  clock: () => Date
  version: string
  startedAt: Date
  runs?: RunService
  watches?: WatchService
  /** launched runs: `launch` in POST /runs and GET /runs/:id/attach */
  pty?: Pick<PtyHost, 'launch' | 'attach' | 'checkAttach'>
  metrics?: MetricsEndpoint
  /** cluster mode: the `cluster` part of status; the node answering for a run's end (`owner` in runs show) */
  cluster?: { status: () => Promise<ClusterStatus>, ownerOf: (runId: string) => string | null }
  /** this node's name: a single node answers for every run it has */
  node?: string
  /** what `status` says about the daemon's own setup (the state dir), found at start */
  stateWarnings?: StatusWarning[]
}
