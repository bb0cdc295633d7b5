// CLUSTER.md "What the tests must show" 4 and 7, with real daemons: three system-mode daemons, each on a host of its
// own (a UTS namespace: its runs' `host` and its nodes/ key say a, b or c), one shared runs root, moto behind a
// counting proxy for the aws target, one real 3-member etcd. A node whose heads are dead is killed with SIGKILL; the
// others adopt its runs and, once its host has had no live node for hostDeadAfterSeconds, end them as killed and
// revoke them: exactly once, counted from outside the daemons (the run.revoke audit lines of every node, moto's
// DeleteSecret calls, the run dirs). 7: the same while the etcd leader is killed during the takeover.
import t, { type Test } from 'tap'
import { chownSync, existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { AWS_ENV, awsConfig } from '../helpers/aws-daemon.js'
import { startClusterDaemons } from '../helpers/cluster-daemons.js'
import { json } from '../helpers/cli.js'
import { startFaultProxy } from '../helpers/fault-proxy.js'
import { listAll, startMoto } from '../helpers/moto.js'
import { ownHost } from '../helpers/netlab.js'
import { requireMoto } from '../helpers/requires.js'
import { ensureUsers } from '../helpers/users.js'

requireMoto(t)

const TTL = 5
const HOST_DEAD = 10
/** the contract's bound: TTL + hostDeadAfterSeconds + 2 s */
const BOUND_MS = (TTL + HOST_DEAD + 2) * 1000

t.test('takeover after kill -9: exactly once', async t => {
  const moto = await startMoto(t)
  const proxy = await startFaultProxy(t, moto.endpoint)
  // Per secret, the SDK invocations that deleted it: a revoke is one invocation (the SDK's own retries of a call whose
  // answer was slow or lost carry the same amz-sdk-invocation-id); a second revoke would be a second id.
  const deletes = new Map<string, Set<string>>()
  let deleteRequests = 0
  proxy.setRule((op, body, headers) => {
    if (op !== 'DeleteSecret') return undefined
    deleteRequests++
    const id = String(body.SecretId)
    deletes.set(id, new Set([...(deletes.get(id) ?? []), String(headers['amz-sdk-invocation-id'] ?? `request-${deleteRequests}`)]))
    return undefined
  })
  const aws = awsConfig(proxy.endpoint)
  const cluster = await startClusterDaemons(t, {
    leaseTtlSeconds: TTL,
    cluster: { hostDeadAfterSeconds: HOST_DEAD },
    config: { ...aws, runs: { livenessIntervalMs: 500, revokeRetryInitialMs: 100, revokeRetryMaxMs: 1000 } }
  })
  if (cluster === null) return
  const c = cluster
  const [alice] = ensureUsers(['alice'])
  const start = async (n: string): Promise<void> => { await c.start(n, { wrap: ownHost(n), env: AWS_ENV }) }
  await Promise.all(['a', 'b', 'c'].map(start))
  const add = await c.cli('a', ['secrets', 'add', 'TOKEN'], { user: 'alice', input: 'canary-takeover-1\n' })
  t.equal(add.code, 0, add.stderr)
  const add2 = await c.cli('a', ['secrets', 'add', 'OTHER'], { user: 'alice', input: 'canary-takeover-2\n' })
  t.equal(add2.code, 0, add2.stderr)

  let dirs = 0
  const arm = async (node: string): Promise<{ runId: string, env: Record<string, string> }> => {
    const d = join(c.work, `p${dirs++}`)
    mkdirSync(d)
    chownSync(d, alice!.uid, alice!.gid)
    const r = await c.cli(node, ['arm', '--all', '--target', 'hpc,aws', '--dir', d, '--format', 'json', '--ttl', '1h'], { user: 'alice' })
    if (r.code !== 0) throw new Error(`arm on ${node} exited ${r.code}: ${r.stderr}`)
    return json(r.stdout)
  }
  const show = async (node: string, runId: string): Promise<{ state: string, owner?: string | null, host?: string, targets: Record<string, { state: string, refs: Array<{ ref: string }> }> }> => {
    const r = await c.cli(node, ['runs', 'show', runId, '--json'], { user: 'alice' })
    if (r.code !== 0) throw new Error(`runs show on ${node} exited ${r.code}: ${r.stderr}`)
    return json(r.stdout)
  }

  /** Kill `victim` with SIGKILL (and run `during` right after); wait until its runs are revoked; count. */
  async function takeover (t: Test, victim: string, survivors: string[], runIds: string[], during?: () => Promise<void>): Promise<void> {
    const before = new Map<string, Awaited<ReturnType<typeof show>>>()
    for (const id of runIds) before.set(id, await show(victim, id))
    for (const [id, r] of before) {
      t.equal(r.owner, victim, `${id} is owned by ${victim}`)
      t.equal(r.host, victim, `and its head's host is ${victim}`)
    }
    const envs = new Map(runIds.map(id => [id, before.get(id)!]))
    // DeleteSecret names a secret by ARN or by name: count both spellings of each.
    const names = new Map((await listAll(moto.endpoint)).map(m => [m.ARN, m.Name]))
    const killedAt = Date.now()
    t.equal(await c.node(victim).daemon.stop('SIGKILL'), null, `${victim} is killed`)
    await during?.()
    const ended = new Map<string, number>()
    const deadline = killedAt + BOUND_MS * 3
    while (ended.size < runIds.length && Date.now() < deadline) {
      for (const id of runIds) {
        if (ended.has(id)) continue
        const r = await show(survivors[0]!, id).catch(() => null)
        if (r !== null && Object.values(r.targets).every(x => x.state === 'revoked')) ended.set(id, Date.now() - killedAt)
      }
      await sleep(200)
    }
    const took = Math.max(...ended.values())
    // A second revoke would come from another node's pass over the ledger: every survivor ends two, with their revokes.
    await c.passes(survivors)
    const audit = c.audit('run.revoke').filter(l => runIds.includes(String(l.runId)))
    const perTarget = new Map<string, string[]>()
    for (const l of audit) perTarget.set(`${String(l.runId)}/${String(l.target)}`, [...(perTarget.get(`${String(l.runId)}/${String(l.target)}`) ?? []), l.node])
    const dupAudit = [...perTarget.values()].filter(v => v.length > 1).length
    const arns = [...envs.values()].flatMap(r => r.targets.aws?.refs.map(x => x.ref) ?? [])
    const calls = (arn: string): number => new Set([...(deletes.get(arn) ?? []), ...(deletes.get(names.get(arn) ?? arn) ?? [])]).size
    const dupDeletes = arns.filter(a => calls(a) > 1).length
    const stillThere = new Set((await listAll(moto.endpoint, true)).map(m => m.ARN))
    const missedDeletes = arns.filter(a => calls(a) === 0 || stillThere.has(a)).length
    const dirsLeft = c.runDirs().filter(d => runIds.some(id => d.endsWith(id))).length
    t.comment(`${victim} killed: ${runIds.length} runs revoked after ${took} ms (bound TTL ${TTL} + hostDeadAfter ${HOST_DEAD} + 2 s = ${BOUND_MS} ms); duplicate run.revoke lines ${dupAudit}, duplicate DeleteSecret invocations ${dupDeletes} (DeleteSecret requests so far ${deleteRequests}, SDK retries included), left: runs ${runIds.length - ended.size}, secrets ${missedDeletes}, dirs ${dirsLeft}`)
    t.equal(ended.size, runIds.length, 'every run revoked')
    t.equal(perTarget.size, runIds.length * 2, 'one run.revoke line per run and target')
    t.equal(dupAudit, 0, 'none twice')
    t.ok(audit.every(l => survivors.includes(l.node)), 'by the survivors')
    t.equal(arns.length, runIds.length * 2, 'two aws secrets a run')
    t.equal(dupDeletes, 0, 'no secret deleted by two invocations')
    t.equal(missedDeletes, 0, 'and none missed: moto holds none of them')
    t.equal(dirsLeft, 0, 'no run dir left')
    for (const id of runIds) {
      const r = await show(survivors[1]!, id)
      t.equal(r.state, 'killed', `${id} ended as killed`)
      t.ok(survivors.includes(String(r.owner ?? survivors[0])), 'by a survivor')
    }
  }

  await t.test('4: kill -9 of a node whose heads are dead', async t => {
    const runs = [await arm('a'), await arm('a'), await arm('a')]
    for (const r of runs) t.ok(existsSync(r.env.NXF_SECRETS_FILE ?? ''), 'placed on the shared runs root')
    await takeover(t, 'a', ['b', 'c'], runs.map(r => r.runId))
  })

  await t.test('7: the etcd leader killed during the takeover', async t => {
    await start('a')
    const runs = [await arm('b'), await arm('b'), await arm('b')]
    let leader = -1
    await takeover(t, 'b', ['a', 'c'], runs.map(r => r.runId), async () => {
      leader = await c.etcd.leader()
      await c.etcd.kill(leader)
      t.comment(`etcd leader m${leader} killed right after b`)
    })
    await c.etcd.restart(leader)
    await c.etcd.healthy()
  })
})
