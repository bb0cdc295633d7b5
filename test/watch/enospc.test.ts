// inotify's watch budget exhausted (ENOSPC): the root falls back to polling, says so in status and in a
// watch.degraded event, and still sees runs. The limit is lowered as root for a moment and restored in teardown.
import t from 'tap'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import { caller } from '../helpers/runs.js'
import { waitFor, watchFixture } from '../helpers/watch.js'
import { requireRoot } from '../helpers/requires.js'

requireRoot(t) // lowers fs.inotify.max_user_watches

const LIMIT = '/proc/sys/fs/inotify/max_user_watches'

t.test('ENOSPC from inotify: polling instead, a warning in status and an event, runs still seen', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-enospc-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // A few dirs in the tree: more watches than the lowered budget allows.
  for (const d of ['a', 'b', 'c', 'd']) mkdirSync(join(dir, 'root', d), { recursive: true })
  const original = readFileSync(LIMIT, 'utf8').trim()
  const restore = (): void => writeFileSync(LIMIT, original)
  t.teardown(restore)
  // The watches of this daemon fail from the first one; other processes keep the watches they hold.
  writeFileSync(LIMIT, '1')
  let f
  try {
    f = await watchFixture(t, { dir, watch: [{ poll: false, intervalMs: 200 }] })
    await waitFor('degraded', () => f!.service.summary().degraded.length > 0, 5000)
  } finally {
    restore()
  }
  t.equal(readFileSync(LIMIT, 'utf8').trim(), original, 'the limit is back')
  const summary = f.service.summary()
  t.match(summary.degraded[0], /inotify/, 'status names the fallback')
  t.ok(f.events.some(e => e.type === 'watch.degraded'), 'a watch.degraded event')
  const view = f.service.list(caller('root', { isAdmin: true })).find(w => w.source === 'config')!
  t.equal(view.poll, true, 'the root now polls')
  t.ok(view.degraded)
  const proj = join(f.root, 'proj')
  mkdirSync(proj)
  const created = await f.runs.create(caller(), { mode: 'arm', launchDir: proj, targets: ['memory'] })
  const nf = await startFakeNextflow({ launchDir: proj, sessionId: created.sessionId })
  t.teardown(() => nf.close())
  await waitFor('running through polling', () => f!.ledger.get(created.runId)?.state === 'running')
  await nf.finish('OK')
  await waitFor('completed through polling', () => f!.ledger.get(created.runId)?.state === 'completed')
})
