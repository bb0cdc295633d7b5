// The partition lab itself (netlab.ts, etcd-cluster.ts in a namespace): a node reaches etcd through its link, runs
// under its own host name, is cut off by its link going down while the other node still writes, and reaches etcd
// again once healed; the etcd leader can be found and killed, and the rest elect another. Cleanup: no namespace of
// this lab is left.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { startEtcdCluster } from './etcd-cluster.js'
import { startNetLab, whyNoNetns } from './netlab.js'
import { requireEtcd, skipFile } from './requires.js'

requireEtcd(t)
const why = whyNoNetns()
if (why !== false) skipFile(t, why)

t.test('cut, heal, host names, leader kill', async t => {
  const lab = startNetLab(t, ['a', 'b'])
  const etcd = await startEtcdCluster(t, 3, { wrap: lab.inServices() })
  if (etcd === null) return
  const put = (node: string, key: string): number | null => spawnSync(lab.wrap(node)[0]!, [...lab.wrap(node).slice(1), 'etcdctl',
    '--endpoints', etcd.endpointsVia(lab.node(node).servicesAddr).join(','), '--command-timeout', '2s', '--dial-timeout', '1s', 'put', key, 'v'],
  { env: { ...process.env, ETCDCTL_API: '3' }, stdio: 'ignore', timeout: 15_000 }).status
  // The links carry before the lab is handed over and after a heal (netlab.ts waitOperUp); a write that should go
  // through still gets three tries, for etcdctl's own 1 s dial on a loaded 2-core machine, which no wait of the lab
  // covers. A node that cannot reach etcd fails all three.
  const reaches = (node: string, key: string): number | null => {
    let status: number | null = null
    for (let i = 0; i < 3 && status !== 0; i++) status = put(node, key)
    return status
  }
  const host = spawnSync(lab.wrap('a')[0]!, [...lab.wrap('a').slice(1), 'hostname'], { encoding: 'utf8' })
  t.equal(host.stdout.trim(), 'a', 'a runs under its own host name')
  t.equal(reaches('a', 'k1'), 0, 'a reaches etcd')
  lab.cut('a')
  t.not(put('a', 'k2'), 0, 'cut: a cannot')
  t.equal(reaches('b', 'k3'), 0, 'b still can')
  lab.heal('a')
  t.equal(reaches('a', 'k4'), 0, 'healed: a can again')

  const leader = await etcd.leader()
  await etcd.kill(leader)
  const next = await etcd.leader()
  t.not(next, leader, 'another member leads')
  t.equal(reaches('b', 'k5'), 0, 'writes go on with two members')
  await etcd.restart(leader)
  await etcd.healthy()
  await etcd.stop()
  lab.stop()
  const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout
  t.notMatch(left, lab.services, 'the namespaces are gone')
})
