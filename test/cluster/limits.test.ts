// SPEC's limits in cluster mode, with real daemons on one real 3-member etcd: the same rules and the same codes as on
// one node. liveRunsPerUser counts a user's live runs over the whole cluster (the ledger is shared): two runs armed on
// two nodes fill a limit of 2 on both. A secret's value and name rules are the API's, before either store: a value of
// 65,537 bytes is NFS_ERR_VALUE_SIZE, a bad name NFS_ERR_INVALID_NAME. SPEC sets no limit on how many secrets a user
// has, on one node or in a cluster.
import t from 'tap'
import { chownSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { startClusterDaemons } from '../helpers/cluster-daemons.js'
import { errorCode } from '../helpers/cli.js'
import { ensureUsers } from '../helpers/users.js'

t.test('limits hold cluster-wide with the single-node codes', async t => {
  const c = await startClusterDaemons(t, { leaseTtlSeconds: 5, config: { limits: { liveRunsPerUser: 2 } } })
  if (c === null) return
  const [alice] = ensureUsers(['alice'])
  await Promise.all(['a', 'b'].map(async n => await c.start(n)))
  let dirs = 0
  const arm = async (node: string): Promise<{ code: number | null, stderr: string }> => {
    const d = join(c.work, `q${dirs++}`)
    mkdirSync(d)
    chownSync(d, alice!.uid, alice!.gid)
    return await c.cli(node, ['arm', '--all', '--dir', d, '--format', 'json', '--ttl', '1h'], { user: 'alice' })
  }
  t.equal((await arm('a')).code, 0, 'first live run, on a')
  t.equal((await arm('b')).code, 0, 'second, on b')
  for (const n of ['a', 'b']) {
    const third = await arm(n)
    t.equal(third.code, 1, `a third on ${n} exits 1`)
    t.equal(errorCode(third.stderr), 'NFS_ERR_LIMIT', 'NFS_ERR_LIMIT, as on one node')
  }

  const big = await c.call('b', 'POST', '/secrets', { name: 'BIG_ONE', value: 'x'.repeat(65_537) })
  t.equal(big.status, 400)
  t.equal((big.body as { code: string }).code, 'NFS_ERR_VALUE_SIZE', 'a value over 64 KiB: NFS_ERR_VALUE_SIZE')
  const bad = await c.call('a', 'POST', '/secrets', { name: '__BAD', value: 'x' })
  t.equal((bad.body as { code: string }).code, 'NFS_ERR_INVALID_NAME', 'a bad name: NFS_ERR_INVALID_NAME')
  t.equal((await c.call('a', 'GET', '/secrets')).body.length, 0, 'nothing was stored')
})
