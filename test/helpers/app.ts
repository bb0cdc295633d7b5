// buildServer on a real store, ledger and audit log in a temp dir, for app.inject() tests. Identity: in production
// it comes from SO_PEERCRED only; here a test picks the caller with the `x-test-user` header, which exists only in
// this helper's identify() and is never read by the daemon. Users and groups come from a table (helpers/nss.ts), so
// these tests need neither root nor the test accounts.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { createMemoryTarget, type MemoryTarget } from '../../adapters/memory.js'
import type { Target } from '../../adapters/types.js'
import { defaults, type Config } from '../../daemon/config.js'
import { EventBus, type NfsEvent } from '../../daemon/events.js'
import { UserDirectory } from '../../daemon/identity/users.js'
import { RunManager } from '../../daemon/runs/manager.js'
import { buildServer } from '../../daemon/server.js'
import { openAuditLog } from '../../daemon/store/audit-log.js'
import { openRunLedger } from '../../daemon/store/run-ledger.js'
import { DeferredRecords } from '../../daemon/runs/deferred-records.js'
import { openSecretsStore, type SecretsStore } from '../../daemon/store/secrets-store.js'
import type { Caller, TargetName } from '../../daemon/types.js'
import { tableNss } from './nss.js'
import { fakeProbes } from './runs.js'

export interface Teardown { teardown: (fn: () => void | Promise<void>) => void }

export const PEOPLE: Record<string, Omit<Caller, 'pid'>> = {
  root: { user: 'root', uid: 0, gid: 0, groups: ['root'], gids: [0], isAdmin: true },
  alice: { user: 'alice', uid: 0, gid: 0, groups: ['alice', 'genomics'], gids: [0], isAdmin: false },
  bob: { user: 'bob', uid: 0, gid: 0, groups: ['bob'], gids: [0], isAdmin: false },
  carol: { user: 'carol', uid: 0, gid: 0, groups: ['carol'], gids: [0], isAdmin: false }
}

export interface AppFixture {
  app: FastifyInstance
  store: SecretsStore
  events: NfsEvent[]
  /** the daemon's event bus, to publish what no route makes */
  bus: EventBus
  /** the daemon's log lines (pino JSON, info and up), parsed */
  logs: Array<Record<string, unknown>>
  memory: MemoryTarget
  dir: string
  config: Config
  as: (user: string) => { 'x-test-user': string }
}

/** `lifecycle: false` builds the server without a run lifecycle, as a daemon that provisions nothing would be. */
export async function appFixture (t: Teardown, over: Partial<Config> = {}, opts: { lifecycle?: boolean } = {}): Promise<AppFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-app-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const base = defaults('system', { uid: 0, home: dir, env: {} })
  const config: Config = { ...base, stateDir: join(dir, 'state'), mode: 'system', configFile: null, runs: { ...base.runs, defaultTargets: ['memory'] }, ...over }
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 })
  mkdirSync(join(dir, 'launch'))
  const logs: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'info' }, { write: (line: string) => { logs.push(JSON.parse(line) as Record<string, unknown>) } })
  const store = await openSecretsStore({ path: join(config.stateDir, 'store.json'), key: randomBytes(32), logger })
  const audit = await openAuditLog(join(config.stateDir, 'audit.log'))
  const ledger = await DeferredRecords.open(await openRunLedger(join(config.stateDir, 'runs.json')))
  const bus = new EventBus()
  const events: NfsEvent[] = []
  bus.subscribe(e => events.push(e))
  bus.follow({ store, ledger })
  const memory = createMemoryTarget()
  const targets = new Map<TargetName, Target>([['memory', memory]])
  const runs = new RunManager({ config, ledger, store, audit, events: bus, targets, logger, clock: () => new Date(), host: 'vm', probes: fakeProbes() })
  const identify = (request: FastifyRequest): Caller => {
    const who = PEOPLE[String(request.headers['x-test-user'] ?? 'root')]
    if (who === undefined) throw new Error('unknown test user')
    return { ...who, pid: 0 }
  }
  const app = await buildServer({
    config,
    logger,
    store,
    audit,
    events: bus,
    identify,
    ...(opts.lifecycle === false ? {} : { runs }),
    users: new UserDirectory({ mode: 'system', adminGroup: config.adminGroup, daemonUid: 0, nss: tableNss() }),
    clock: () => new Date(),
    version: '0.0.0-test',
    startedAt: new Date()
  })
  t.teardown(async () => {
    await app.close()
    await ledger.close()
    await store.close()
    await audit.close()
  })
  return { app, store, events, bus, logs, memory, dir, config, as: (user) => ({ 'x-test-user': user }) }
}
