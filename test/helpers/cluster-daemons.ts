// Several REAL system-mode nf-secretsd daemons in cluster mode, for CLUSTER.md "What the tests must show": each node
// its own dir (socket, state dir, audit log, log file) and node name (--node-name), all of them one shared runs root,
// one master key and one prefix on one real 3-member etcd (etcd-cluster.ts). Everything a test counts is read from
// outside the daemons: the CLI's exit codes, each node's audit log, the shared runs root, `nf-secrets events --json`.
// Skips the test (t.plan(0, reason)) without root or etcd. Lean for CI's 2 cores: a short lease TTL, logs at info.
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { call, startTestDaemon, tempDir, type Reply, type TestDaemon } from './daemon.js'
import { runCli, spawnCli, type RunOptions, type RunResult, type StreamingCli } from './cli.js'
import { startEtcdCluster, type EtcdCluster } from './etcd-cluster.js'
import type { NetLab } from './netlab.js'
import { parseExposition, sample } from './prom-text.js'
import { whyNoEtcd, whyNotRoot } from './requires.js'
import { waitFor } from './wait.js'

export interface ClusterNode {
  name: string
  dir: string
  daemon: TestDaemon
  socket: string
  stateDir: string
}

export interface EventStream {
  /** the events this node's /events has sent so far (as `nf-secrets events --json` printed them) */
  all: () => Array<Record<string, unknown>>
  /** resolves with the first event that matches; rejects after timeoutMs */
  waitFor: (pred: (e: Record<string, unknown>) => boolean, timeoutMs?: number) => Promise<Record<string, unknown>>
  stop: () => Promise<void>
}

export interface DaemonCluster {
  etcd: EtcdCluster
  prefix: string
  keyFile: string
  /** the runs root every node shares (as a shared filesystem would be) */
  runsRoot: string
  /** a dir every test user can write into, for launch dirs */
  work: string
  nodes: Map<string, ClusterNode>
  node: (name: string) => ClusterNode
  /**
   * start a node (again, in its own dir: its state dir and lease file kept); `config` merged into its config; `wrap`
   * execs the daemon (e.g. `['unshare', '--uts', 'sh', '-c', 'hostname h2 && exec "$@"', 'sh']` for a host of its own)
   */
  start: (name: string, opts?: { config?: Record<string, unknown>, wait?: boolean, wrap?: string[], env?: NodeJS.ProcessEnv }) => Promise<ClusterNode>
  /** the CLI against one node's socket, as `opts.user` (root when absent) */
  cli: (name: string, args: string[], opts?: RunOptions) => Promise<RunResult>
  /** one API request to a node as root */
  call: (name: string, method: string, path: string, body?: unknown) => Promise<Reply>
  /** follow a node's /events as root (an admin sees every user's events), or as `user` */
  events: (name: string, user?: string) => Promise<EventStream>
  /**
   * Resolves once each node named has ended `count` more monitor passes (each with the revokes it queued) than when
   * called (nfsecretsd_monitor_passes_total): what a test waits for before it counts what a pass would have done,
   * instead of a fixed sleep. A node that stops passing fails it after `timeoutMs`.
   */
  passes: (names: string[], count?: number, timeoutMs?: number) => Promise<void>
  /** the audit lines of every node with this action, each with the node that wrote it */
  audit: (action: string) => Array<{ node: string } & Record<string, unknown>>
  /** run dirs (not hidden) in the shared runs root, over every user's subdir */
  runDirs: () => string[]
}

export interface ClusterDaemonsOptions {
  /** default 5 s, the schema's minimum (self-fencing at TTL - 2 s) */
  leaseTtlSeconds?: number
  /** merged into every node's config */
  config?: Record<string, unknown>
  /** merged into every node's `cluster` section (e.g. hostDeadAfterSeconds) */
  cluster?: Record<string, unknown>
  /**
   * a network lab (netlab.ts) for partitions: etcd runs in its services namespace, and each node started with a name
   * of the lab runs in that node's namespace under its own host name, reaching etcd through its own link
   */
  lab?: NetLab
}

/** Start etcd and prepare the shared parts; nodes are started with start(). Null (the test skipped) without root or etcd. */
export async function startClusterDaemons (t: Test, opts: ClusterDaemonsOptions = {}): Promise<DaemonCluster | null> {
  const why = whyNotRoot() || whyNoEtcd()
  if (why !== false) {
    t.plan(0, why)
    return null
  }
  const lab = opts.lab
  const etcd = await startEtcdCluster(t, 3, lab !== undefined ? { wrap: lab.inServices() } : {})
  if (etcd === null) return null
  const base = tempDir(t, 'nfs-cluster-')
  const prefix = `/nfs-test/${randomBytes(6).toString('hex')}/`
  const keyFile = join(base, 'master.key')
  // One key for every node, as each node's systemd credential would hold it (CLUSTER.md).
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  const runsRoot = join(base, 'runs')
  const work = join(base, 'work')
  mkdirSync(work, { mode: 0o1777 })
  const nodes = new Map<string, ClusterNode>()
  const streams: EventStream[] = []
  t.teardown(async () => { for (const s of streams) await s.stop() })

  const node = (name: string): ClusterNode => {
    const n = nodes.get(name)
    if (n === undefined) throw new Error(`no node ${name} was started`)
    return n
  }

  const cluster: DaemonCluster = {
    etcd,
    prefix,
    keyFile,
    runsRoot,
    work,
    nodes,
    node,
    start: async (name, o = {}) => {
      const dir = join(base, name)
      if (!existsSync(dir)) mkdirSync(dir, { mode: 0o755 })
      const config = {
        keyFile,
        logLevel: 'info',
        hpc: { runsRoot },
        runs: { livenessIntervalMs: 500 },
        cluster: { etcd: { endpoints: lab?.nodes.has(name) === true ? etcd.endpointsVia(lab.node(name).servicesAddr) : etcd.endpoints, prefix }, leaseTtlSeconds: opts.leaseTtlSeconds ?? 5, ...opts.cluster },
        ...opts.config,
        ...o.config
      }
      const daemon = await startTestDaemon(t, { mode: 'system', dir, config, args: ['--node-name', name], ...(o.wait === false ? { wait: false } : {}), ...(o.wrap !== undefined ? { wrap: o.wrap } : lab?.nodes.has(name) === true ? { wrap: lab.wrap(name) } : {}), ...(o.env !== undefined ? { env: o.env } : {}) })
      const n: ClusterNode = { name, dir, daemon, socket: daemon.socket, stateDir: daemon.stateDir }
      nodes.set(name, n)
      return n
    },
    cli: async (name, args, o = {}) => await runCli(args, { timeoutMs: 60_000, ...o, env: { NF_SECRETS_SOCKET: node(name).socket, ...o.env } }),
    call: async (name, method, path, body) => await call(node(name).socket, method, `/api/v1${path}`, body, { timeoutMs: 30_000 }),
    passes: async (names, count = 2, timeoutMs = 60_000) => {
      const passesOf = async (name: string): Promise<number> =>
        sample(parseExposition((await call(node(name).socket, 'GET', '/metrics', undefined, { timeoutMs: 30_000 })).text), 'nfsecretsd_monitor_passes_total')
      const from = new Map(await Promise.all(names.map(async n => [n, await passesOf(n)] as const)))
      for (const n of names) {
        await waitFor(`${count} monitor passes of ${n}`, async () => await passesOf(n) >= from.get(n)! + count, timeoutMs, 100)
      }
    },
    events: async (name, user) => {
      const s: StreamingCli = spawnCli(t, ['events', '--json'], { env: { NF_SECRETS_SOCKET: node(name).socket }, ...(user !== undefined ? { user } : {}) })
      await s.waitFor('stderr', /streaming events/)
      const all = (): Array<Record<string, unknown>> => s.stdout().split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, unknown>)
      const stream: EventStream = {
        all,
        waitFor: async (pred, timeoutMs = 30_000) => {
          const deadline = Date.now() + timeoutMs
          for (;;) {
            const hit = all().find(pred)
            if (hit !== undefined) return hit
            if (Date.now() > deadline) throw new Error(`no such event on ${name} within ${timeoutMs} ms; got ${JSON.stringify(all()).slice(0, 2000)}`)
            await new Promise(resolve => setTimeout(resolve, 50))
          }
        },
        stop: async () => { await s.stop() }
      }
      streams.push(stream)
      return stream
    },
    audit: (action) => {
      const out: Array<{ node: string } & Record<string, unknown>> = []
      for (const n of nodes.values()) {
        const file = join(n.stateDir, 'audit.log')
        if (!existsSync(file)) continue
        for (const line of readFileSync(file, 'utf8').split('\n')) {
          if (line === '') continue
          const entry = JSON.parse(line) as Record<string, unknown>
          if (entry.action === action) out.push({ node: n.name, ...entry })
        }
      }
      return out
    },
    runDirs: () => {
      if (!existsSync(runsRoot)) return []
      const out: string[] = []
      for (const user of readdirSync(runsRoot, { withFileTypes: true })) {
        if (!user.isDirectory()) continue
        for (const d of readdirSync(join(runsRoot, user.name))) if (!d.startsWith('.')) out.push(join(user.name, d))
      }
      return out
    }
  }
  return cluster
}
