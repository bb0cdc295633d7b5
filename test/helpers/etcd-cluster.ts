// A real 3-member etcd cluster on free loopback ports (CLUSTER.md "Running etcd here"), for the cluster tests and the
// etcd backend's contract run. Each member is its own process in a session of its own, with stdio on a log file (an
// inherited pipe would keep tap waiting); stop() kills them all and removes the data dirs. Skips the test cleanly,
// saying how to install it, when Debian's etcd-server is missing.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, openSync, closeSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'

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
  stop: () => Promise<void>
}

export function etcdAvailable (): boolean {
  return spawnSync('etcd', ['--version'], { stdio: 'ignore' }).status === 0
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => { resolve(port) })
    })
  })
}

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

/** Start the cluster, or skip `t` with the reason when etcd is not installed. Torn down with `t`. */
export async function startEtcdCluster (t: Test, size = 3): Promise<EtcdCluster | null> {
  if (!etcdAvailable()) {
    t.plan(0, 'etcd is not installed (apt-get install -y --no-install-recommends etcd-server etcd-client)')
    return null
  }
  const dir = mkdtempSync(join(tmpdir(), 'nfs-etcd-'))
  const members: EtcdMember[] = []
  for (let i = 0; i < size; i++) {
    members.push({ name: `m${i}`, clientUrl: `http://127.0.0.1:${await freePort()}`, peerUrl: `http://127.0.0.1:${await freePort()}`, dataDir: join(dir, `m${i}`), proc: null })
  }
  const initial = members.map(m => `${m.name}=${m.peerUrl}`).join(',')
  let state: 'new' | 'existing' = 'new'

  function launch (m: EtcdMember): void {
    const log = openSync(join(dir, `${m.name}.log`), 'a')
    m.proc = spawn('etcd', [
      '--name', m.name, '--data-dir', m.dataDir,
      '--listen-client-urls', m.clientUrl, '--advertise-client-urls', m.clientUrl,
      '--listen-peer-urls', m.peerUrl, '--initial-advertise-peer-urls', m.peerUrl,
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
      if (p === null || p.exitCode !== null) return
      const gone = new Promise<void>(resolve => p.once('exit', () => { resolve() }))
      p.kill('SIGKILL')
      await gone
    },
    restart: async (i) => {
      launch(members[i]!)
    },
    healthy: async () => {
      const eps = members.filter(m => m.proc !== null).map(m => m.clientUrl).join(',')
      for (let i = 0; i < 300; i++) {
        const r = spawnSync('etcdctl', ['--endpoints', eps, 'endpoint', 'health'], { env: { ...process.env, ETCDCTL_API: '3' }, stdio: 'ignore', timeout: 5000 })
        if (r.status === 0) return
        await sleep(100)
      }
      throw new Error(`etcd did not become healthy (logs in ${dir})`)
    },
    stop: async () => {
      await Promise.all(members.map(async (_, i) => { await cluster.kill(i) }))
      rmSync(dir, { recursive: true, force: true })
    }
  }
  for (const m of members) launch(m)
  state = 'existing'
  t.teardown(async () => { await cluster.stop() })
  await cluster.healthy()
  return cluster
}
