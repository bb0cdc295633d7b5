// The reliability suite's cluster part (`npm run test:chaos`): three real daemons on hosts of their own and a real
// 3-member etcd; 200 runs armed in waves on random nodes while daemons are killed with SIGKILL (restarted within the
// lease TTL or after it) and etcd members are killed and restarted; then every run is revoked from a random node.
// Counted from outside: run.revoke audit lines of all nodes per run and target (0 duplicates), run dirs and runs not
// revoked (0 left), and the secrets: every node still lists them, and a run armed at the end on each node gets every
// canary value (0 lost). NF_CHAOS_SEED=<n> replays the random choices.
import t from 'tap'
import { chownSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { startClusterDaemons } from '../helpers/cluster-daemons.js'
import { json } from '../helpers/cli.js'
import { ownHost } from '../helpers/netlab.js'
import { ensureUsers } from '../helpers/users.js'

t.setTimeout(600_000)
const seed = Number(process.env.NF_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31))
t.comment(`seed ${seed} (replay with NF_CHAOS_SEED=${seed})`)
let state = seed >>> 0
const random = (): number => {
  // mulberry32: small, seedable, good enough to pick victims
  state = (state + 0x6D2B79F5) >>> 0
  let x = state
  x = Math.imul(x ^ (x >>> 15), x | 1)
  x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296
}
const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!

const TTL = 5
const RUNS = 200
const WAVE = 20
const NODES = ['a', 'b', 'c']

await t.test('cluster: kill -9 of daemons and etcd members during 200 runs', async t => {
  const cluster = await startClusterDaemons(t, { leaseTtlSeconds: TTL, cluster: { hostDeadAfterSeconds: 10 } })
  if (cluster === null) return
  const c = cluster
  const [alice] = ensureUsers(['alice'])
  const start = async (n: string): Promise<void> => { await c.start(n, { wrap: ownHost(n) }) }
  await Promise.all(NODES.map(start))
  const live = new Set(NODES)
  const canaries = new Map<string, string>()
  for (const name of ['TOKEN', 'DB_PASSWORD', 'API_KEY']) {
    const value = `canary-cluster-${name}-${seed}-${Math.floor(random() * 1e9)}`
    canaries.set(name, value)
    const r = await c.cli('a', ['secrets', 'add', name], { user: 'alice', input: `${value}\n` })
    t.equal(r.code, 0, r.stderr)
  }
  let dirs = 0
  const arm = async (node: string): Promise<{ runId: string, env: Record<string, string> } | null> => {
    const d = join(c.work, `r${dirs++}`)
    mkdirSync(d)
    chownSync(d, alice!.uid, alice!.gid)
    const r = await c.cli(node, ['arm', '--all', '--dir', d, '--format', 'json', '--ttl', '1h'], { user: 'alice', timeoutMs: 30_000 })
    return r.code === 0 ? json(r.stdout) : null
  }

  const runIds: string[] = []
  let refused = 0
  let daemonKills = 0
  let etcdKills = 0
  let lateRestarts = 0
  const t0 = Date.now()
  while (runIds.length < RUNS) {
    // A wave of arms on random live nodes, with one fault in its middle.
    const fault = pick(['daemon-fast', 'daemon-late', 'etcd', 'none'] as const)
    const armed = Promise.all(Array.from({ length: WAVE }, async (_, i) => {
      await sleep(i * 50)
      const n = pick([...live])
      return await arm(n).catch(() => null)
    }))
    await sleep(300)
    if (fault === 'daemon-fast' || fault === 'daemon-late') {
      const victim = pick([...live])
      live.delete(victim)
      daemonKills++
      await c.node(victim).daemon.stop('SIGKILL')
      // Within the TTL: no takeover. After it: the others adopt its runs, and its host comes back alive.
      if (fault === 'daemon-late') { lateRestarts++; await sleep((TTL + 1) * 1000) }
      await start(victim)
      live.add(victim)
    } else if (fault === 'etcd') {
      const m = Math.floor(random() * 3)
      etcdKills++
      await c.etcd.kill(m)
      await sleep(1000)
      await c.etcd.restart(m)
    }
    const got = await armed
    for (const r of got) {
      if (r === null) refused++
      else runIds.push(r.runId)
    }
    await c.etcd.healthy()
  }
  t.comment(`armed ${runIds.length} runs in ${Date.now() - t0} ms; arms refused during faults ${refused}; daemon kills ${daemonKills} (${lateRestarts} restarted after the TTL), etcd member kills ${etcdKills}`)

  // Every run revoked from a random node (the owner does it; a non-owner records the end and the owner follows).
  await Promise.all(runIds.map(async (id, i) => {
    await sleep(i * 20)
    await c.cli(pick(NODES), ['runs', 'revoke', id], { user: 'alice', timeoutMs: 30_000 }).catch(() => null)
  }))
  const deadline = Date.now() + 120_000
  const notRevoked = async (): Promise<string[]> => {
    const r = await c.cli('a', ['runs', 'list', '--all', '--json'], { user: 'alice', timeoutMs: 60_000 })
    const rows = r.code === 0 ? json<Array<{ runId: string, targets: Record<string, { state: string }> }>>(r.stdout) : []
    const revoked = new Set(rows.filter(x => Object.values(x.targets).every(tr => tr.state === 'revoked')).map(x => x.runId))
    return runIds.filter(id => !revoked.has(id))
  }
  let left = await notRevoked()
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(1000)
    left = await notRevoked()
  }
  await sleep(2000)
  const perTarget = new Map<string, number>()
  for (const l of c.audit('run.revoke')) {
    if (!runIds.includes(String(l.runId))) continue
    const k = `${String(l.runId)}/${String(l.target)}`
    perTarget.set(k, (perTarget.get(k) ?? 0) + 1)
  }
  const dup = [...perTarget.values()].filter(n => n > 1).length
  const dirsLeft = c.runDirs().filter(d => runIds.some(id => d.endsWith(id))).length

  // No secret lost: listed on every node, and a fresh run on each node gets every value.
  let lost = 0
  for (const n of NODES) {
    const r = await c.cli(n, ['secrets', 'list', '--json'], { user: 'alice' })
    const names = new Set(json<Array<{ name: string }>>(r.stdout).map(s => s.name))
    lost += [...canaries.keys()].filter(k => !names.has(k)).length
    const run = await arm(n)
    if (run === null) { lost += canaries.size; continue }
    const file = readFileSync(run.env.NXF_SECRETS_FILE!, 'utf8')
    lost += [...canaries.values()].filter(v => !file.includes(v)).length
    await c.cli(n, ['runs', 'revoke', run.runId], { user: 'alice' })
  }
  t.comment(`cluster chaos: ${runIds.length} runs, duplicates ${dup}, left ${left.length} runs and ${dirsLeft} dirs, lost secrets ${lost}`)
  t.equal(dup, 0, 'no run.revoke line twice for a run and target')
  t.equal(left.length, 0, 'every run revoked')
  t.equal(dirsLeft, 0, 'no run dir left')
  t.equal(lost, 0, 'no secret lost')
})
