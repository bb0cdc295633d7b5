// GET /health, /whoami, /status.
import type { ApiInstance } from './type-provider.js'
import type { StatusView, WhoamiView } from '../contract/system.js'
import { rolesOf } from '../rules/access.js'

export default async function systemApi (api: ApiInstance): Promise<void> {
  const { deps } = api

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
      mode: deps.config.mode,
      pid: process.pid,
      startedAt: deps.startedAt.toISOString(),
      uptimeSeconds: Math.round((deps.clock().getTime() - deps.startedAt.getTime()) / 1000),
      secrets: counts.secrets,
      workspaces: counts.workspaces,
      runs: deps.runs?.countsByState() ?? {},
      targets: deps.runs !== undefined ? await deps.runs.targetStatus() : {},
      watches: deps.watches?.summary(request.caller) ?? { roots: 0, launchDirs: 0, degraded: [] },
      warnings: deps.stateWarnings ?? [],
      ...(deps.cluster !== undefined ? { cluster: await deps.cluster.status() } : {})
    }
  })
}
