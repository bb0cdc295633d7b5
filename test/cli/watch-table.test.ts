// `watch list` as people read it: a root still walked at start-up says so beside its (partial) launch-dir count.
import t from 'tap'
import { watchTable } from '../../daemon/cli/watch.js'
import type { WatchView } from '../../daemon/contract/watches.js'

const view = (root: string, walking: boolean): WatchView => ({
  root, depth: 2, workspace: null, targets: [], poll: false, intervalMs: 1000, owner: 'config', source: 'config', launchDirs: 42, degraded: null, walking
})

t.test('a root being walked is marked, a walked one is not', async t => {
  const rows = watchTable([view('/scratch/a', true), view('/scratch/b', false)]).split('\n')
  const row = (root: string): string[] => rows.find(r => r.startsWith(root))!.split(/\s{2,}/)
  t.ok(row('/scratch/a').includes('42 (walking)'))
  t.ok(row('/scratch/b').includes('42'))
  t.notOk(row('/scratch/b').some(c => c.includes('walking')))
})

t.test('in a cluster each root says which node polls it; on one node there is no such column', async t => {
  const shared = { ...view('/shared/a', false), poller: 'login2' }
  const none = { ...view('/shared/b', false), poller: null }
  const rows = watchTable([shared, none]).split('\n')
  t.match(rows[0], /POLLER$/)
  t.match(rows.find(r => r.startsWith('/shared/a')), /login2$/)
  t.match(rows.find(r => r.startsWith('/shared/b')), /-$/)
  t.notMatch(watchTable([view('/scratch/a', false)]), /POLLER/)
})
