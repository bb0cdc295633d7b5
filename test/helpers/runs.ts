// A RunManager on a real store, ledger and audit log in a temp dir, with the memory target and scriptable probes:
// the cheapest real level for orchestration tests.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { createMemoryTarget, type MemoryTarget } from '../../adapters/memory.js'
import type { Target } from '../../adapters/types.js'
import { defaults, type Config } from '../../daemon/config.js'
import { EventBus, type NfsEvent } from '../../daemon/events.js'
import { RunManager } from '../../daemon/runs/manager.js'
import type { Monitor } from '../../daemon/runs/monitor.js'
import type { Probes } from '../../daemon/runs/probes.js'
import type { Observation } from '../../daemon/runs/observe.js'
import type { RunOwnership } from '../../daemon/runs/ownership.js'
import { openAuditLog } from '../../daemon/store/audit-log.js'
import { openRunLedger, type RunLedger } from '../../daemon/store/run-ledger.js'
import { DeferredRecords, type DeferredLedger } from '../../daemon/runs/deferred-records.js'
import { openSecretsStore, type SecretsStore } from '../../daemon/store/secrets-store.js'
import { intentRecord } from '../../daemon/runs/provision.js'
import type { Caller, RunRecord, TargetName } from '../../daemon/types.js'
import { randomBytes } from 'node:crypto'

export interface Teardown { teardown: (fn: () => void | Promise<void>) => void }

/** Probes whose answers a test sets: by default nothing is alive and no file says anything. */
export interface FakeProbes extends Probes {
  alive: Set<number>
  lockHeld: boolean
  slurm: 'pending' | 'running' | 'gone' | 'unknown'
  /** the owner Slurm reports for any job (default: this process's uid); null: Slurm does not know it */
  slurmOwnerUid: number | null
  /** how many times Slurm was asked, and about which jobs */
  slurmAsked: string[][]
  observation: Observation
}

export function fakeProbes (): FakeProbes {
  const p: FakeProbes = {
    alive: new Set(),
    lockHeld: false,
    slurm: 'gone',
    observation: { history: null, historyCount: 0, log: null, pidFile: null },
    processAlive: async (pid) => p.alive.has(pid),
    processStart: async (pid) => p.alive.has(pid) ? 1000 + pid : null,
    sessionLock: async () => ({ held: p.lockHeld, pid: null }),
    slurmOwnerUid: process.getuid!(),
    slurmAsked: [],
    slurmJob: () => p.slurm,
    slurmRefresh: async (ids) => { p.slurmAsked.push([...ids]); return p.slurm !== 'unknown' },
    slurmOwner: async () => p.slurmOwnerUid,
    observe: async () => p.observation,
    historyMark: async () => 0
  }
  return p
}

export interface RunsFixture {
  dir: string
  launchDir: string
  config: Config
  store: SecretsStore
  ledger: DeferredLedger
  runs: RunManager
  monitor: Monitor
  memory: MemoryTarget
  probes: FakeProbes
  events: NfsEvent[]
  bus: EventBus
  now: { t: number }
  reopen: () => Promise<RunsFixture>
}

export function caller (user = 'root', over: Partial<Caller> = {}): Caller {
  return { user, uid: process.getuid!(), gid: process.getgid!(), pid: 0, groups: [user], gids: [process.getgid!()], isAdmin: false, ...over }
}

/**
 * An armed run's first record as the lifecycle makes it (run r1, session s1, launch dir /l, TTL 120 s), at version 1:
 * the base the pure tables of a record's changes and rules vary.
 */
export function armedRecord (targets: TargetName[], now = new Date('2026-11-25T12:00:00Z')): RunRecord {
  const intent = intentRecord({
    runId: 'r1',
    sessionId: 's1',
    caller: caller(),
    workspace: '-',
    host: 'vm',
    req: { mode: 'arm', launchDir: '/l' },
    names: [],
    targets,
    now,
    ttlSeconds: 120,
    pid: null,
    pidStart: null,
    historyMark: 0
  })
  return { ...intent, version: 1 }
}

export interface RunsFixtureOptions {
  targets?: Map<TargetName, Target>
  dir?: string
  key?: Buffer
  probes?: FakeProbes
  /** the probes the lifecycle uses instead of the fixture's fakes (realProbes()); `probes` stays the fakes */
  runProbes?: Probes
  /** the lifecycle's clock instead of the fixture's frozen `now` */
  clock?: () => Date
  /** change the config the lifecycle gets */
  configure?: (config: Config) => Config
  ownership?: RunOwnership
  ownerRevokeWaitMs?: number
  host?: string
  memory?: MemoryTarget
  limits?: Partial<Config['limits']>
  /** the ledger under DeferredRecords instead of a runs.json in the state dir (an etcd ledger); closed with the fixture */
  ledger?: RunLedger
}

export async function runsFixture (t: Teardown, opts: RunsFixtureOptions = {}): Promise<RunsFixture> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'nfs-runs-'))
  if (opts.dir === undefined) t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const launchDir = join(dir, 'launch')
  mkdirSync(launchDir, { recursive: true })
  const base = defaults('user', { uid: process.getuid!(), home: dir, env: {} })
  const plain = { ...base, stateDir: join(dir, 'state'), limits: { ...base.limits, ...opts.limits }, runs: { ...base.runs, defaultTargets: ['memory' as const], revokeRetryInitialMs: 10, revokeRetryMaxMs: 100 }, mode: 'user' as const, configFile: null }
  const config = opts.configure !== undefined ? opts.configure(plain) : plain
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 })
  const logger = pino({ level: process.env.NFS_TEST_LOG ?? 'silent' })
  const key = opts.key ?? randomBytes(32)
  const store = await openSecretsStore({ path: join(config.stateDir, 'store.json'), key, logger })
  const ledger = await DeferredRecords.open(opts.ledger ?? await openRunLedger(join(config.stateDir, 'runs.json')))
  const audit = await openAuditLog(join(config.stateDir, 'audit.log'))
  const bus = new EventBus()
  const events: NfsEvent[] = []
  bus.subscribe(e => events.push(e))
  bus.follow({ store, ledger })
  const memory = opts.memory ?? createMemoryTarget()
  const targets = opts.targets ?? new Map<TargetName, Target>([['memory', memory]])
  const probes = opts.probes ?? fakeProbes()
  const now = { t: Date.parse('2026-11-25T12:00:00Z') }
  const clock = opts.clock ?? ((): Date => new Date(now.t))
  const runs = new RunManager({
    config,
    ledger,
    store,
    audit,
    events: bus,
    targets,
    logger,
    clock,
    host: opts.host ?? 'vm',
    probes: opts.runProbes ?? probes,
    ...(opts.ownership !== undefined ? { ownership: opts.ownership } : {}),
    ...(opts.ownerRevokeWaitMs !== undefined ? { ownerRevokeWaitMs: opts.ownerRevokeWaitMs } : {})
  })
  const monitor = runs.createMonitor({ intervalMs: 60_000, retentionDays: config.runs.retentionDays })
  t.teardown(async () => {
    await monitor.stop()
    await ledger.close()
    await store.close()
    await audit.close()
  })
  const fixture: RunsFixture = {
    dir,
    launchDir,
    config,
    store,
    ledger,
    runs,
    monitor,
    memory,
    probes,
    events,
    bus,
    now,
    reopen: async () => {
      await ledger.close()
      await store.close()
      await audit.close()
      return await runsFixture(t, { ...opts, dir, key, probes, memory })
    }
  }
  return fixture
}
