// Start-up does not wait for the watch roots (issue 18): a daemon with a large root answers /health while that root
// is still being walked, and its walk begins only once the socket listens. Asserted on order and state (the log's
// `listening` line before the walk's `begin`, the root `walking` in the status of the first answer), never on time.
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { call, startTestDaemon, tempDir } from '../helpers/daemon.js'
import { waitFor } from '../helpers/watch.js'

const DIRS = 5000

t.test('a daemon with a large watch root answers /health while its walk is still going', async t => {
  const dir = tempDir(t)
  const root = join(dir, 'root')
  for (let i = 0; i < DIRS; i++) {
    mkdirSync(join(root, `p${i}`, '.nextflow'), { recursive: true })
    writeFileSync(join(root, `p${i}`, '.nextflow', 'history'), '')
  }
  const d = await startTestDaemon(t, { mode: 'user', config: { watch: [{ root, depth: 1 }] } })
  // startTestDaemon returns at the first 200 of /health: ask for the status at once.
  const status = await call(d.socket, 'GET', '/api/v1/status')
  t.equal(status.status, 200)
  t.same(status.body.watches.walking, [root], 'the root is still being walked when the daemon first answers')

  const lines = d.logs()
  const listening = lines.findIndex(l => typeof l.socket === 'string' && l.socket === d.socket)
  const begin = lines.findIndex(l => l.root === root && l.walk === 'begin')
  t.ok(listening >= 0, 'the daemon logged that it listens')
  t.ok(begin > listening, 'the walk began after the socket listened')

  await waitFor('the walk', async () => {
    const r = await call(d.socket, 'GET', '/api/v1/watches')
    return r.body.some((w: { root: string, launchDirs: number, walking: boolean }) => w.root === root && !w.walking && w.launchDirs === DIRS)
  }, 120_000, 100)
})
