// The AWS orphan sweep in cluster mode, with real daemons on one real 3-member etcd and moto: each node sweeps only
// the secrets it made (the nf-secretsd:node tag, its node name), never another node's, even on the same host (by the
// host tag, as before, a node swept every secret of its host whose run its view of the ledger did not know: another
// node's run being provisioned that very moment). Counted from outside: moto's secrets.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { AWS_ENV, awsConfig } from '../helpers/aws-daemon.js'
import { startClusterDaemons } from '../helpers/cluster-daemons.js'
import { listAll, smCall, startMoto } from '../helpers/moto.js'
import { requireMoto } from '../helpers/requires.js'
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
