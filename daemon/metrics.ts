// Prometheus metrics for GET /metrics (SPEC section 7). One Registry per daemon, never prom-client's global one, so
// two daemons in one process (tests) keep apart. Gauges are read from their source at scrape time rather than
// kept in step by hand; counters of events come through the run manager's observer.
// Labels carry only fixed vocabularies (target, state, outcome, mode, version): never a secret's name, a user, a
// workspace or a path, which would leak through a scrape that any local user can make.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { AwsStats } from '../adapters/aws-secrets-manager.js'
import type { MetricsEndpoint } from './deps.js'
import type { RunObserver } from './runs/manager.js'
import { countedRuns } from './runs/run-counts.js'
import type { RunLedger } from './store/run-ledger.js'
import { LIVE_STATES, TERMINAL_STATES, type Mode, type TargetName, type TargetState } from './types.js'
import type { WatchSummary } from './contract/watches.js'

export const METRIC_PREFIX = 'nfsecretsd_'

const RUN_STATES = [...LIVE_STATES, ...TERMINAL_STATES]
const TARGET_STATES: readonly TargetState[] = ['provisioning', 'provisioned', 'revoking', 'revoked', 'revoke_failed']

// Revokes range from a file removal (milliseconds) to AWS deletes under throttling with backoff (tens of seconds).
export const REVOKE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]

export interface MetricsSources {
  ledger: Pick<RunLedger, 'all' | 'archive'>
  /** the AWS target's running totals; absent when there is no AWS target */
  aws?: () => AwsStats
  /** the watcher's summary; read at each scrape, since the watcher may be built after the metrics */
  watches?: () => WatchSummary | undefined
  /** the monitor's passes so far (Monitor.passes); read at each scrape, since the monitor is built after the metrics */
  passes?: () => number
  /** the configured targets: their counters start at zero, so a rate() has a series before the first run */
  targets: readonly string[]
  version: string
  mode: Mode
}

export interface DaemonMetrics extends MetricsEndpoint {
  readonly registry: Registry
  /** hand this to the RunManager: provisions and revokes are counted as they happen */
  readonly observer: RunObserver
}

/** Counts of runs per state, every state present (a missing series reads as "no data", not zero, in PromQL). */
export function runsByState (runs: ReadonlyArray<{ state: string }>): Map<string, number> {
  const counts = new Map<string, number>(RUN_STATES.map(s => [s, 0]))
  for (const r of runs) counts.set(r.state, (counts.get(r.state) ?? 0) + 1)
  return counts
}

/** Counts of per-target records by target and state: revoke_failed above zero is what an admin alerts on. */
export function targetsByState (runs: ReadonlyArray<{ targets: Partial<Record<TargetName, { state: TargetState } | undefined>> }>): Map<string, Map<TargetState, number>> {
  const out = new Map<string, Map<TargetState, number>>()
  for (const r of runs) {
    for (const [target, rec] of Object.entries(r.targets)) {
      if (rec === undefined) continue
      let m = out.get(target)
      if (m === undefined) {
        m = new Map(TARGET_STATES.map(s => [s, 0]))
        out.set(target, m)
      }
      m.set(rec.state, (m.get(rec.state) ?? 0) + 1)
    }
  }
  return out
}

/** how often the event-loop lag metric samples (prom-client's eventLoopMonitoringPrecision) */
export const EVENT_LOOP_SAMPLE_MS = 100

export function createMetrics (sources: MetricsSources): DaemonMetrics {
  const registry = new Registry()
  const p = METRIC_PREFIX
  // The event-loop lag histogram samples with a libuv timer: prom-client's default, every 10 ms, woke an idle daemon
  // 100 times a second (strace: 200 epoll_pwait a second and nothing else), about half a percent of a core with nothing
  // to do (issue 18: idle CPU < 1%). Every 100 ms still sees any stall of 100 ms or more, and half of those of 50 ms.
  collectDefaultMetrics({ register: registry, prefix: p, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS })

  // The metrics computed at each scrape (collect()) are held by the registry alone.
  registry.registerMetric(new Gauge({
    name: `${p}build_info`,
    help: 'Always 1; the labels say which version runs in which mode',
    labelNames: ['version', 'mode'],
    registers: [],
    collect () { this.set({ version: sources.version, mode: sources.mode }, 1) }
  }))

  registry.registerMetric(new Gauge({
    name: `${p}runs`,
    help: 'Runs in the ledger by state',
    labelNames: ['state'],
    registers: [],
    async collect () {
      const runs = await countedRuns(sources.ledger)
      this.reset()
      for (const [state, n] of runsByState(runs)) this.set({ state }, n)
    }
  }))

  registry.registerMetric(new Gauge({
    name: `${p}run_targets`,
    help: 'Per-target records of the runs in the ledger by target and state (revoke_failed: secrets still placed, retrying)',
    labelNames: ['target', 'state'],
    registers: [],
    async collect () {
      const runs = await countedRuns(sources.ledger)
      this.reset()
      for (const [target, states] of targetsByState(runs)) {
        for (const [state, n] of states) this.set({ target, state }, n)
      }
    }
  }))

  const provisions = new Counter({
    name: `${p}provisions_total`,
    help: 'Provisionings of a run to a target, by target and outcome',
    labelNames: ['target', 'outcome'],
    registers: [registry]
  })
  const revokes = new Counter({
    name: `${p}revokes_total`,
    help: 'Revoke attempts of a run in a target, by target and outcome (a failed one is retried with backoff)',
    labelNames: ['target', 'outcome'],
    registers: [registry]
  })
  // Records the revoke path could not write (a full state disk) and kept in memory: the ledger or audit log on disk is
  // behind until space returns. Any increase wants an admin's look at the state dir's filesystem.
  const deferred = new Counter({
    name: `${p}deferred_records_total`,
    help: 'Revoke-path records kept in memory because the state disk refused them, by kind (ledger, audit)',
    labelNames: ['what'],
    registers: [registry]
  })
  for (const what of ['ledger', 'audit']) deferred.inc({ what }, 0)
  const revokeSeconds = new Histogram({
    name: `${p}revoke_duration_seconds`,
    help: 'Time one revoke attempt took in a target, successful or not',
    labelNames: ['target'],
    buckets: REVOKE_BUCKETS,
    registers: [registry]
  })

  // The AWS target keeps running totals; counters are rebuilt from them at each scrape.
  const awsCounter = (name: string, help: string, pick: (s: AwsStats) => number): void => {
    registry.registerMetric(new Counter({
      name: `${p}aws_${name}_total`,
      help,
      registers: [],
      collect () {
        this.reset()
        if (sources.aws !== undefined) this.inc(pick(sources.aws()))
      }
    }))
  }
  awsCounter('calls', 'AWS Secrets Manager requests sent, every retry included', s => s.calls)
  awsCounter('throttles', 'AWS Secrets Manager requests answered with a throttling error', s => s.throttles)
  awsCounter('retries', 'AWS Secrets Manager requests retried after throttling, a 5xx or a network error', s => s.retries)

  const watchGauge = (name: string, help: string, pick: (s: WatchSummary) => number): void => {
    registry.registerMetric(new Gauge({
      name: `${p}${name}`,
      help,
      registers: [],
      collect () {
        const s = sources.watches?.()
        this.set(s === undefined ? 0 : pick(s))
      }
    }))
  }
  watchGauge('watch_roots', 'Watched roots (from the config and from `watch add`; in a cluster, those this node polls)', s => s.polledHere ?? s.roots)
  watchGauge('watched_launch_dirs', 'Nextflow launch dirs found under the watched roots', s => s.launchDirs)
  watchGauge('watch_degraded_roots', 'Watched roots that cannot be watched as asked (missing, unreadable, over a limit)', s => s.degraded.length)

  // A pass that stops coming is a lifecycle that stopped revoking; the cluster tests wait on it before counting revokes.
  registry.registerMetric(new Counter({
    name: `${p}monitor_passes_total`,
    help: 'Passes of the run monitor ended, each with the revokes it queued',
    registers: [],
    collect () { this.reset(); this.inc(sources.passes?.() ?? 0) }
  }))

  const outcome = (ok: boolean): string => ok ? 'ok' : 'error'
  for (const target of sources.targets) {
    for (const ok of [true, false]) {
      provisions.inc({ target, outcome: outcome(ok) }, 0)
      revokes.inc({ target, outcome: outcome(ok) }, 0)
    }
    revokeSeconds.zero({ target })
  }
  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    observer: {
      provisioned (target, ok) {
        provisions.inc({ target, outcome: outcome(ok) })
      },
      revoked (target, ok, seconds) {
        revokes.inc({ target, outcome: outcome(ok) })
        revokeSeconds.observe({ target }, seconds)
      },
      deferred (what) {
        deferred.inc({ what })
      }
    }
  }
}
