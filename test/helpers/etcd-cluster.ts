// A real 3-member etcd cluster on free loopback ports (CLUSTER.md "Running etcd here"), for the cluster tests and the
// etcd backend's contract run. Each member is its own process in a session of its own, with stdio on a log file (an
// inherited pipe would keep tap waiting); stop() kills them all and removes the data dirs. Skips the test cleanly,
// saying how to install it, when Debian's etcd-server is missing.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { connectEtcd, type EtcdConnection } from '../../daemon/store/etcd/etcd-client.js'
import { startTcpRelay, type TcpRelay } from './tcp-relay.js'
import { freePort } from './free-port.js'

export interface EtcdMember { name: string, clientUrl: string, peerUrl: string, dataDir: string, proc: ChildProcess | null }

export interface EtcdCluster {
  endpoints: string[]
  members: EtcdMember[]
  /** SIGKILL one member (by index) */
  kill: (i: number) => Promise<void>
  /** start a killed member again with the same data dir */
  restart: (i: number) => Promise<void>
  /** wait until every running member answers endpoint health */
  healthy: () => Promise<void>
  /** index of the member that leads now (asked of the running members) */
  leader: () => Promise<number>
  /**
   * With `peerRelays`: cut one member off from its peers, both ways (what the others dial to it, and what it dials to
   * them), while clients still reach it; `rejoin` heals that.
   */
  isolate: (i: number) => Promise<void>
  rejoin: (i: number) => void
  /** the client endpoints as seen from a node of a network lab (netlab.ts): the members' ports at `addr` */
  endpointsVia: (addr: string) => string[]
  stop: () => Promise<void>
}

export function etcdAvailable (): boolean {
  return spawnSync('etcd', ['--version'], { stdio: 'ignore' }).status === 0
}

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

export interface EtcdClusterOptions {
  /**
   * argv prefix to run each member (and etcdctl) inside a network namespace, e.g. a lab's `inServices()`: the members
   * then listen on every address of that namespace, reached through `endpointsVia(addr)`.
   */
  wrap?: string[]
  /**
   * Each member advertises its peer URL through a TCP relay of the test's (tcp-relay.ts), so that isolate() can cut
   * it from its peers alone. Not with `wrap`.
   */
  peerRelays?: boolean
}

/** A member that exited while it should run; `portTaken` when its port was taken before it could bind. */
class MemberExited extends Error {
  readonly portTaken: boolean
  constructor (name: string, log: string) {
    super(`etcd member ${name} exited: ${log.trim().split('\n').slice(-3).join(' | ')}`)
    this.portTaken = /address already in use/.test(log)
  }
}

/** how long healthy() waits for every running member to answer, at most */
const HEALTHY_WITHIN_MS = 90_000

/**
 * Start the cluster, or skip `t` with the reason when etcd is not installed. Torn down with `t`. A member whose port
 * another process took between the pick and its bind exits at once: the cluster then starts again on new ports.
 */
export async function startEtcdCluster (t: Test, size = 3, opts: EtcdClusterOptions = {}): Promise<EtcdCluster | null> {
  if (!etcdAvailable()) {
    t.plan(0, 'etcd is not installed (apt-get install -y --no-install-recommends etcd-server etcd-client)')
    return null
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(t, size, opts)
    } catch (err) {
      if (!(err instanceof MemberExited) || !err.portTaken || attempt === 3) throw err
      t.comment(`etcd: ${err.message}; starting again on other ports`)
    }
  }
}

async function startOnce (t: Test, size: number, opts: EtcdClusterOptions): Promise<EtcdCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-etcd-'))
  const members: EtcdMember[] = []
  for (let i = 0; i < size; i++) {
    members.push({ name: `m${i}`, clientUrl: `http://127.0.0.1:${await freePort()}`, peerUrl: `http://127.0.0.1:${await freePort()}`, dataDir: join(dir, `m${i}`), proc: null })
  }
  // A member's peers reach it only at its advertised URL: the relay's, which forwards to the port it listens on.
  const relays: TcpRelay[] = []
  if (opts.peerRelays === true) {
    // Tagged by the dialing member's id (hex, as etcd writes it in X-Server-From).
    const tagOf = (head: string): string | null => /\r\nX-Server-From: ([0-9a-f]+)\r\n/i.exec(head)?.[1]?.toLowerCase() ?? null
    for (const m of members) relays.push(await startTcpRelay(t, { host: '127.0.0.1', port: Number(new URL(m.peerUrl).port) }, { tagOf }))
  }
  const advertised = (i: number): string => relays[i] === undefined ? members[i]!.peerUrl : `http://127.0.0.1:${relays[i].port}`
  const wrap = opts.wrap ?? []
  // In a namespace of the test's own every address there is the test's: clients come in through the lab's links.
  const listenUrl = (m: EtcdMember): string => wrap.length === 0 ? m.clientUrl : m.clientUrl.replace('127.0.0.1', '0.0.0.0')
  // Not spawnSync: the peer relays (peerRelays) live in this process's event loop, and a health check needs them.
  const etcdctl = async (args: string[]): Promise<{ status: number, stdout: string }> => await new Promise(resolve => {
    execFile(wrap[0] ?? 'etcdctl', [...wrap.slice(1), ...(wrap.length > 0 ? ['etcdctl'] : []), ...args],
      { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8', timeout: 5000 },
      (err, stdout) => { resolve({ status: err === null ? 0 : 1, stdout }) })
  })
  const initial = members.map((m, i) => `${m.name}=${advertised(i)}`).join(',')
  let state: 'new' | 'existing' = 'new'

  const readLog = (m: EtcdMember): string => {
    try { return readFileSync(join(dir, `${m.name}.log`), 'utf8').slice(-4000) } catch { return '' }
  }

  function launch (m: EtcdMember): void {
    const log = openSync(join(dir, `${m.name}.log`), 'a')
    m.proc = spawn(wrap[0] ?? 'etcd', [...wrap.slice(1), ...(wrap.length > 0 ? ['etcd'] : []),
      '--name', m.name, '--data-dir', m.dataDir,
      '--listen-client-urls', listenUrl(m), '--advertise-client-urls', m.clientUrl,
      '--listen-peer-urls', m.peerUrl, '--initial-advertise-peer-urls', advertised(members.indexOf(m)),
      '--initial-cluster', initial, '--initial-cluster-state', state, '--initial-cluster-token', 'nfs-test',
      // Fast elections for tests; pre-vote so a rejoining member does not depose a healthy leader (CLUSTER.md).
      '--heartbeat-interval', '100', '--election-timeout', '1000', '--pre-vote',
      '--auto-compaction-mode', 'periodic', '--auto-compaction-retention', '1h'
    ], { detached: true, stdio: ['ignore', log, log] })
    closeSync(log)
    m.proc.on('error', () => {})
  }

  const cluster: EtcdCluster = {
    endpoints: members.map(m => m.clientUrl),
    members,
    kill: async (i) => {
      const m = members[i]!
      const p = m.proc
      m.proc = null
      // exitCode stays null for a process killed by a signal: it is gone all the same, and its 'exit' was emitted.
      if (p === null || p.exitCode !== null || p.signalCode !== null) return
      const gone = new Promise<void>(resolve => p.once('exit', () => { resolve() }))
      p.kill('SIGKILL')
      await gone
    },
    restart: async (i) => {
      launch(members[i]!)
    },
    healthy: async () => {
      const eps = members.filter(m => m.proc !== null).map(m => m.clientUrl).join(',')
      const deadline = Date.now() + HEALTHY_WITHIN_MS
      while (Date.now() < deadline) {
        // A member that exited never answers: say so now rather than ask it until the deadline.
        const gone = members.find(m => m.proc !== null && (m.proc.exitCode !== null || m.proc.signalCode !== null))
        if (gone !== undefined) throw new MemberExited(gone.name, readLog(gone))
        if ((await etcdctl(['--endpoints', eps, '--dial-timeout', '1s', '--command-timeout', '2s', 'endpoint', 'health'])).status === 0) return
        await sleep(100)
      }
      throw new Error(`etcd did not become healthy in ${HEALTHY_WITHIN_MS / 1000} s (logs in ${dir})`)
    },
    leader: async () => {
      const eps = members.filter(m => m.proc !== null).map(m => m.clientUrl).join(',')
      for (let i = 0; i < 100; i++) {
        const r = await etcdctl(['--endpoints', eps, 'endpoint', 'status', '-w', 'json'])
        try {
          // Member ids are uint64: kept as strings, not rounded to doubles.
          const list = JSON.parse(String(r.stdout).replace(/:\s*(\d{16,})/g, ':"$1"')) as Array<{ Endpoint: string, Status: { header: { member_id: number | string }, leader: number | string } }>
          const lead = list.find(e => String(e.Status.header.member_id) === String(e.Status.leader))
          const i = lead === undefined ? -1 : members.findIndex(m => m.clientUrl === lead.Endpoint)
          if (i >= 0) return i
        } catch {}
        await sleep(100)
      }
      throw new Error(`no etcd leader (logs in ${dir})`)
    },
    isolate: async (i) => {
      const id = await memberId(i)
      relay(i).cut()
      members.forEach((_, j) => { if (j !== i) relay(j).cut(id) })
    },
    rejoin: () => { for (let j = 0; j < members.length; j++) relay(j).heal() },
    endpointsVia: (addr) => members.map(m => m.clientUrl.replace('127.0.0.1', addr)),
    stop: async () => {
      await Promise.all(members.map(async (_, i) => { await cluster.kill(i) }))
      rmSync(dir, { recursive: true, force: true })
    }
  }
  const relay = (i: number): TcpRelay => {
    const r = relays[i]
    if (r === undefined) throw new Error('isolate() needs startEtcdCluster(..., { peerRelays: true })')
    return r
  }
  /** the member's id in hex, as etcd's peers name it */
  const memberId = async (i: number): Promise<string> => {
    const r = await etcdctl(['--endpoints', members[i]!.clientUrl, 'endpoint', 'status', '-w', 'json'])
    const list = JSON.parse(r.stdout.replace(/:\s*(\d{10,})/g, ':"$1"')) as Array<{ Status: { header: { member_id: number | string } } }>
    return BigInt(String(list[0]!.Status.header.member_id)).toString(16)
  }
  for (const m of members) launch(m)
  state = 'existing'
  t.teardown(async () => { await cluster.stop() })
  try {
    await cluster.healthy()
  } catch (err) {
    if (err instanceof MemberExited && err.portTaken) {
      await cluster.stop()
      await Promise.all(relays.map(async r => { await r.close() }))
    }
    throw err
  }
  return cluster
}

/** A key prefix of its own, so that tests sharing one cluster do not share data. */
export function freshPrefix (): string {
  return `/nfs-test/${randomBytes(6).toString('hex')}/`
}

export interface EtcdNamespace {
  cluster: EtcdCluster
  /** a fresh prefix (freshPrefix) */
  prefix: string
  /** a connection of its own, on `prefix` and every member unless told otherwise, closed when the test ends */
  connect: (opts?: { prefix?: string, endpoints?: string[] }) => EtcdConnection
}

/**
 * What the etcd tests start with: a real cluster (startEtcdCluster; null when etcd is not installed and `t` was
 * skipped), a fresh prefix, and connections to it that close with `t`.
 */
export async function startEtcdNamespace (t: Test): Promise<EtcdNamespace | null> {
  const cluster = await startEtcdCluster(t)
  if (cluster === null) return null
  const prefix = freshPrefix()
  const connect: EtcdNamespace['connect'] = (opts = {}) => {
    const conn = connectEtcd({ endpoints: opts.endpoints ?? cluster.endpoints, prefix: opts.prefix ?? prefix })
    t.teardown(() => { conn.close() })
    return conn
  }
  return { cluster, prefix, connect }
}
