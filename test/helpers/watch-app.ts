// buildServer over a watch fixture's room (helpers/watch.ts), for app.inject() tests of /watches and /status. The
// caller is picked with the `x-test-user` header (as in helpers/app.ts) and resolved by uid through real NSS: these
// tests chown dirs to the real test users, whose ownership the watch rules check.
import { join } from 'node:path'
import { pino } from 'pino'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { UserDirectory } from '../../daemon/identity/users.js'
import { buildServer } from '../../daemon/server.js'
import { openAuditLog } from '../../daemon/store/audit-log.js'
import type { Caller } from '../../daemon/types.js'
import type { WatchFixture } from './watch.js'

/** `uids`: the test users by name (root is uid 0 unless named); a request with no header comes from root. */
export async function watchApp (t: { teardown: (fn: () => unknown) => void }, f: WatchFixture, uids: Record<string, number>): Promise<FastifyInstance> {
  const users = new UserDirectory({ mode: 'system', adminGroup: 'nf-secrets-admin', daemonUid: 0 })
  const known: Record<string, number> = { root: 0, ...uids }
  const audit = await openAuditLog(join(f.dir, `audit-${Date.now()}.log`))
  const identify = (request: FastifyRequest): Caller => {
    const uid = known[String(request.headers['x-test-user'] ?? 'root')]
    if (uid === undefined) throw new Error('unknown test user')
    return users.callerFor({ pid: 0, uid, gid: 0 })
  }
  const app = await buildServer({
    config: f.config,
    logger: pino({ level: 'silent' }),
    store: f.store,
    audit,
    events: f.bus,
    users,
    identify,
    clock: () => new Date(),
    version: 'test',
    startedAt: new Date(),
    runs: f.runs,
    watches: f.service
  })
  t.teardown(async () => { await app.close(); await audit.close() })
  return app
}

/** The header that makes a request come from `user`. */
export const as = (user: string): { 'x-test-user': string } => ({ 'x-test-user': user })
