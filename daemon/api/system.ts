// GET /health, /whoami, /status.
import type { ApiPlugin } from './type-provider.js'
import type { ClusterStatus, StatusView, WhoamiView } from '../contract/system.js'
import type { StatusWarning } from '../../adapters/types.js'
import type { Config } from '../config.js'
import type { RunService } from '../runs/service.js'
import type { SecretsStore } from '../store/secrets-store.js'
import type { WatchService } from '../watch/watch-service.js'
import { rolesOf } from '../rules/access.js'

export interface SystemApiOptions {
  store: Pick<SecretsStore, 'listWorkspaces' | 'counts'>
  mode: Config['mode']
  version: string
  startedAt: Date
  clock: () => Date
  /** each absent where the daemon lacks it: status then shows none */
  runs?: Pick<RunService, 'countsByState' | 'targetStatus'>
  watches?: Pick<WatchService, 'summary'>
  /** what status says about the daemon's own setup (the state dir), found at start */
  stateWarnings?: StatusWarning[]
  /** cluster mode: the `cluster` part of status */
  cluster?: () => Promise<ClusterStatus>
}

const systemApi: ApiPlugin<SystemApiOptions> = async (api, deps) => {
  api.get('/health', async () => ({ status: 'ok' }))

  api.get('/whoami', async (request): Promise<WhoamiView> => {
    const c = request.caller
    return {
      user: c.user,
      uid: c.uid,
      gid: c.gid,
      groups: c.groups,
      admin: c.isAdmin,
      roles: { personal: 'owner', ...rolesOf(c, deps.store.listWorkspaces()) }
    }
  })

  api.get('/status', async (request): Promise<StatusView> => {
    const counts = deps.store.counts()
    return {
      version: deps.version,
      mode: deps.mode,
      pid: process.pid,
      startedAt: deps.startedAt.toISOString(),
      uptimeSeconds: Math.round((deps.clock().getTime() - deps.startedAt.getTime()) / 1000),
      secrets: counts.secrets,
      workspaces: counts.workspaces,
      runs: await deps.runs?.countsByState() ?? {},
      targets: deps.runs !== undefined ? await deps.runs.targetStatus() : {},
      watches: deps.watches?.summary(request.caller) ?? { roots: 0, launchDirs: 0, degraded: [] },
      warnings: deps.stateWarnings ?? [],
      ...(deps.cluster !== undefined ? { cluster: await deps.cluster() } : {})
    }
  })
}

export default systemApi
