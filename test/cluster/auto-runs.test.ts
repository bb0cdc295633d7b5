// CLUSTER.md "Auto-runs": two real daemons on one real 3-member etcd watch the same shared dir; one Nextflow start
// nobody armed makes exactly one auto-run, whichever node sees it first. Both see it at once (inotify on one
// filesystem), so before the run's id was derived from the start (launch dir, session UUID, run name) each node
// made a run of its own. Counted from outside: the runs every node lists, the daemons' logs.
import t from 'tap'
import { chownSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { startClusterDaemons } from '../helpers/cluster-daemons.js'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import { ensureUsers } from '../helpers/users.js'
import { waitFor } from '../helpers/wait.js'

t.test('one start in a dir two nodes watch: one auto-run', async t => {
  const c = await startClusterDaemons(t, { leaseTtlSeconds: 5 })
  if (c === null) return
  const [alice] = ensureUsers(['alice'])
  const watch = { watch: [{ root: c.work, targets: ['memory'], depth: 2 }] }
  await Promise.all(['a', 'b'].map(async n => await c.start(n, { config: watch })))
  t.equal((await c.cli('a', ['secrets', 'add', 'AUTO_TOKEN'], { user: 'alice', input: 'auto-1\n' })).code, 0)

  const starts = 3
  const dirs: string[] = []
  for (let i = 0; i < starts; i++) {
    const d = join(c.work, `auto${i}`)
    mkdirSync(d)
    chownSync(d, alice!.uid, alice!.gid)
    dirs.push(d)
  }
  // Both watchers take the new dirs in before Nextflow writes there.
  await sleep(2000)
  const autoRuns = async (node: string): Promise<Array<{ runId: string, launchDir: string, runName: string | null }>> =>
    ((await c.call(node, 'GET', '/runs?all=true')).body as Array<{ runId: string, mode: string, launchDir: string, runName: string | null }>).filter(r => r.mode === 'auto')
  const nfs = []
  for (const d of dirs) {
    const nf = await startFakeNextflow({ launchDir: d, uid: alice!.uid, gid: alice!.gid })
    t.teardown(() => nf.close())
    nfs.push(nf)
  }
  await waitFor('an auto-run for every start', async () => new Set((await autoRuns('a')).map(r => r.launchDir)).size === starts, 30_000, 200).catch(() => {})
  // Both nodes' decisions: the watch's next poll and one monitor pass of each node, then count.
  await sleep(3000)
  for (const n of ['a', 'b']) {
    const runs = await autoRuns(n)
    t.comment(`node ${n} lists ${runs.length} auto-run(s) for ${starts} starts`)
    for (const [i, d] of dirs.entries()) {
      const mine = runs.filter(r => r.launchDir === d)
      t.equal(mine.length, 1, `${n}: one auto-run for the start in ${d}`)
      t.equal(mine[0]?.runName, nfs[i]!.runName, 'with its run name')
    }
  }
  for (const n of ['a', 'b']) {
    const skipped = c.node(n).daemon.log().split('\n').filter(l => l.includes('auto-run skipped'))
    t.same(skipped, [], `${n}: the node that lost the race says nothing of it (no run.skipped)`)
  }
})
