// A watch room on real parts: the runs fixture's store and ledger, the real hpc target (user mode) next to the memory
// target, the real liveness probes, a Monitor and the DirWatchService over real dirs. The monitor's timer is off
// unless asked for, so a test shows that a file event alone ended a run.
import { randomBytes } from 'node:crypto'
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { createHpcTarget } from '../../adapters/hpc.js'
import { createMemoryTarget, type MemoryTarget } from '../../adapters/memory.js'
import type { Target } from '../../adapters/types.js'
import type { Config, WatchRoot } from '../../daemon/config.js'
import { UserDirectory } from '../../daemon/identity/users.js'
import type { Monitor } from '../../daemon/runs/monitor.js'
import { realProbes, type Probes } from '../../daemon/runs/probes.js'
import { SecretValue } from '../../daemon/secret-value.js'
import type { TargetName } from '../../daemon/types.js'
import type { AutoRunDecision } from '../../daemon/watch/auto-run.js'
import { DirWatchService } from '../../daemon/watch/watch-service.js'
import type { WalkFs } from '../../daemon/watch/walk.js'
import { runsFixture, type RunsFixture, type Teardown } from './runs.js'

import { waitFor } from './wait.js'

export { waitFor }

export interface WatchFixture extends RunsFixture {
  root: string
  runsRoot: string
  monitor: Monitor
  service: DirWatchService
  memory: MemoryTarget
  /** what became of each start seen under a root, in order (auto-run.ts) */
  autoRuns: AutoRunDecision[]
  /** stop the service and the monitor, reopen store and ledger, start both again (a daemon restart) */
  restart: () => Promise<WatchFixture>
}

export interface WatchFixtureOptions {
  /** watch roots of the config (root paths are filled in relative to the fixture's `root` when relative) */
  watch?: Array<Partial<WatchRoot>>
  mode?: 'user' | 'system'
  /** run the monitor's periodic pass at this interval (dirty ends need it: a SIGKILL writes nothing) */
  monitorMs?: number
  runPollMs?: number
  probes?: Probes
  /** wraps the watcher's fs (count or hold its calls) */
  wrapFs?: (fs: WalkFs) => WalkFs
  /** how often the room looks again at the roots it did not walk */
  rootRecheckMs?: number
  dir?: string
  key?: Buffer
  memory?: MemoryTarget
  /** over the defaults of the config's `limits` section */
  limits?: Partial<Config['limits']>
}

export async function watchFixture (t: Teardown, opts: WatchFixtureOptions = {}): Promise<WatchFixture> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'nfs-watch-'))
  if (opts.dir === undefined) t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const runsRoot = join(dir, 'runs')
  const root = join(dir, 'root')
  mkdirSync(runsRoot, { recursive: true, mode: 0o700 })
  mkdirSync(root, { recursive: true })
  const logger = pino({ level: process.env.NFS_TEST_LOG ?? 'silent' })
  const memory = opts.memory ?? createMemoryTarget()
  const hpc = createHpcTarget({ runsRoot, privileged: false, logger })
  const targets = new Map<TargetName, Target>([['hpc', hpc], ['memory', memory]])
  const key = opts.key ?? randomBytes(32)
  const probes = opts.probes ?? realProbes()
  // History lines carry the real time; the fixture's frozen clock would make every line look stale.
  const clock = (): Date => new Date()
  const watch = (opts.watch ?? []).map(w => ({ depth: 3, poll: false, intervalMs: 200, ...w, root: w.root ?? root })) as WatchRoot[]
  const configure = (c: Config): Config => ({ ...c, watch, mode: opts.mode ?? 'user', limits: { ...c.limits, ...opts.limits } })
  const f = await runsFixture(t, { dir, targets, memory, key, runProbes: probes, clock, configure })
  const config = f.config
  const monitor = f.runs.createMonitor({ intervalMs: opts.monitorMs ?? 60_000, retentionDays: 30 })
  await monitor.reconcile()
  if (opts.monitorMs !== undefined) monitor.start()
  const users = new UserDirectory({ mode: config.mode, adminGroup: 'nf-secrets-admin', daemonUid: process.getuid!() })
  const autoRuns: AutoRunDecision[] = []
  const service = await DirWatchService.open({
    config,
    runs: f.runs,
    workspaces: f.store,
    monitor,
    users,
    events: f.bus,
    logger,
    clock,
    runPollMs: opts.runPollMs ?? 200,
    debounceMs: 30,
    onAutoRun: d => { autoRuns.push(d) },
    ...(opts.wrapFs !== undefined ? { wrapFs: opts.wrapFs } : {}),
    ...(opts.rootRecheckMs !== undefined ? { rootRecheckMs: opts.rootRecheckMs } : {})
  })
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    await service.stop()
    await monitor.stop()
  }
  t.teardown(stop)
  return {
    ...f,
    root,
    runsRoot,
    monitor,
    service,
    memory,
    autoRuns,
    restart: async () => {
      await stop()
      await f.ledger.close()
      await f.store.close()
      return await watchFixture(t, { ...opts, dir, memory, key })
    }
  }
}

/**
 * As root in system mode: the config watches the fixture's root for workspace `lab` with `targets`, alice may launch
 * in lab, and lab holds LAB_TOKEN = lab-secret-1. The fixture's dirs are opened (0755) for users' project dirs below.
 */
export async function labWatchFixture (t: Teardown, targets: TargetName[], opts: WatchFixtureOptions = {}): Promise<WatchFixture> {
  const f = await watchFixture(t, { mode: 'system', watch: [{ workspace: 'lab', targets, depth: 2 }], ...opts })
  chmodSync(f.dir, 0o755)
  chmodSync(f.root, 0o755)
  await f.store.createWorkspace('lab', 'root')
  await f.store.setMember('lab', 'alice', 'launch')
  await f.store.createSecret('workspace:lab', 'LAB_TOKEN', new SecretValue('lab-secret-1'), 'root')
  return f
}

/** A user's new project dir under the fixture's root, waited for until the watcher watches it (not a fixed pause). */
export async function projectDir (f: WatchFixture, name: string, owner: { uid: number, gid: number }): Promise<string> {
  const dir = join(f.root, name)
  mkdirSync(dir)
  chownSync(dir, owner.uid, owner.gid)
  await waitFor(`${name} to be watched`, () => f.service.watcher.watched(`root:${f.root}`)[dir] !== undefined)
  return dir
}
