// The AWS orphan sweep in cluster mode, with real daemons on one real 3-member etcd and moto: each node sweeps only
// the secrets it made (the nf-secretsd:node tag, its node name), never another node's, even on the same host (by the
// host tag, as before, a node swept every secret of its host whose run its view of the ledger did not know: another
// node's run being provisioned that very moment). Counted from outside: moto's secrets.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { chownSync, mkdirSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { AWS_ENV, awsConfig } from '../helpers/aws-daemon.js'
import { startClusterDaemons } from '../helpers/cluster-daemons.js'
import { listAll, smCall, startMoto } from '../helpers/moto.js'
import { requireMoto, requireUsers } from '../helpers/requires.js'
import { waitFor } from '../helpers/wait.js'

requireMoto(t)

t.test('two nodes on one host: each sweeps only its own leftovers', async t => {
  const moto = await startMoto(t)
  const c = await startClusterDaemons(t, { leaseTtlSeconds: 5, config: awsConfig(moto.endpoint) })
  if (c === null) return
  // Leftovers of runs no ledger knows (a crash between AWS's answer and the ledger's write), one made by each node,
  // both on this host, as each node would have tagged them.
  const leftover = async (node: string): Promise<string> => {
    const runId = `Lost${randomBytes(5).toString('hex')}`
    const name = `nf-secrets/${runId}/TOKEN`
    await smCall(moto.endpoint, 'CreateSecret', {
      Name: name,
      SecretString: 'x',
      Tags: [{ Key: 'nf-secretsd:run', Value: runId }, { Key: 'nf-secretsd:host', Value: hostname() }, { Key: 'nf-secretsd:node', Value: node }]
    })
    return name
  }
  const ofA = await leftover('a')
  const ofB = await leftover('b')
  const names = async (): Promise<string[]> => (await listAll(moto.endpoint)).map(s => s.Name)

  // Only b runs: its start-up sweep lists and deletes in one go, so once its own leftover is gone it has judged a's.
  await c.start('b', { env: AWS_ENV })
  await waitFor('b\'s sweep to remove its own leftover', async () => !(await names()).includes(ofB), 30_000, 200)
  t.pass('b swept its own leftover')
  t.ok((await names()).includes(ofA), 'a\'s leftover on the same host is left to a')

  await c.start('a', { env: AWS_ENV })
  await waitFor('a\'s sweep to remove its leftover', async () => !(await names()).includes(ofA), 30_000, 200).catch(() => {})
  t.notOk((await names()).includes(ofA), 'a sweeps its own at its start')
})

// A node gone for good (its name never used again): nobody sweeps by its node tag any more, so a live node takes over
// its leftovers once the name has had no member key for hostDeadAfterSeconds, and only those of runs that are over or
// unknown to the ledger: a live run it made (adopted by another node) keeps its secrets. Only for a name that joined
// this cluster: the account may hold other daemons' secrets under the same prefix.
t.test('the leftovers of a node gone for good are swept by a live node, its live runs\' secrets kept', async t => {
  const [alice] = requireUsers(t, ['alice'])
  const moto = await startMoto(t)
  const HOST_DEAD = 10
  const c = await startClusterDaemons(t, { leaseTtlSeconds: 5, cluster: { hostDeadAfterSeconds: HOST_DEAD }, config: awsConfig(moto.endpoint, { sweepIntervalSeconds: 10 }) })
  if (c === null) return
  await Promise.all(['a', 'b', 'c'].map(async n => await c.start(n, { env: AWS_ENV })))
  t.equal((await c.cli('a', ['secrets', 'add', 'TOKEN'], { user: 'alice', input: 'canary-gone-node\n' })).code, 0)
  const dir = join(c.work, 'gone-node')
  mkdirSync(dir)
  chownSync(dir, alice!.uid, alice!.gid)
  const armed = await c.cli('c', ['arm', '--all', '--target', 'aws', '--dir', dir, '--format', 'json', '--ttl', '1h'], { user: 'alice' })
  t.equal(armed.code, 0, armed.stderr)
  const { runId } = JSON.parse(armed.stdout) as { runId: string }
  const names = async (): Promise<string[]> => (await listAll(moto.endpoint)).map(s => s.Name)
  const liveSecret = (await names()).find(n => n.includes(runId))
  t.ok(liveSecret !== undefined, 'c placed the live run\'s secret in AWS')
  // A leftover of c's (a crash between AWS's answer and the ledger's write): a run no ledger knows.
  const lostRun = `Lost${randomBytes(5).toString('hex')}`
  const lost = `nf-secrets/${lostRun}/TOKEN`
  await smCall(moto.endpoint, 'CreateSecret', {
    Name: lost,
    SecretString: 'x',
    Tags: [{ Key: 'nf-secretsd:run', Value: lostRun }, { Key: 'nf-secretsd:host', Value: hostname() }, { Key: 'nf-secretsd:node', Value: 'c' }]
  })

  // A single-node daemon sharing the account and prefix (a login node not yet in the cluster) tags its secrets with
  // its own node name, which never joined this cluster: never a gone node's, whatever the ledger knows.
  const soloRun = `Solo${randomBytes(5).toString('hex')}`
  const solo = `nf-secrets/${soloRun}/TOKEN`
  await smCall(moto.endpoint, 'CreateSecret', {
    Name: solo,
    SecretString: 'x',
    Tags: [{ Key: 'nf-secretsd:run', Value: soloRun }, { Key: 'nf-secretsd:host', Value: 'login9' }, { Key: 'nf-secretsd:node', Value: 'login9' }]
  })

  t.equal(await c.node('c').daemon.stop('SIGKILL'), null, 'c is killed -9 and never comes back')
  await waitFor('the leftover of c to be swept', async () => !(await names()).includes(lost), 90_000, 500).catch(() => {})
  t.notOk((await names()).includes(lost), 'c\'s leftover is swept by a live node')
  t.ok((await names()).includes(liveSecret!), 'the live run c made keeps its secret (adopted, not over)')
  t.ok((await names()).includes(solo), 'a secret of a node that never joined this cluster is left alone')
  const shown = JSON.parse((await c.cli('a', ['runs', 'show', runId, '--json'], { user: 'alice' })).stdout) as { state: string }
  t.equal(shown.state, 'armed', 'and the run is still armed')
  const sweptBy = ['a', 'b'].filter(n => c.node(n).daemon.logs().some(l => l.msg === 'aws orphan sweep removed secrets'))
  t.ok(sweptBy.length >= 1, `swept by ${sweptBy.join(', ')}`)
})
