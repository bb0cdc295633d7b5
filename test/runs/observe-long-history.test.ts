// observeRun and historyMarkOf on a launch dir with a long history, read from a checkpoint after the first look
// (history-checkpoints.ts, issue 18): a fresh run and a `-resume` (its session's old line before the checkpoint) are
// matched to their own new lines, through Nextflow's start (appended) and end (the file written again).
import t from 'tap'
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { randomUUID } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { historyMarkOf, observeRun } from '../../daemon/runs/observe.js'
import { createCheckpoints, CHECKPOINT_LAG } from '../../daemon/nextflow/history-checkpoints.js'

const line = (runName: string, sessionId: string, status = 'OK'): string =>
  `2026-11-0${1 + (runName.length % 9)} 09:10:11\t${status === '-' ? '-' : '3m 1s'}\t${runName}\t${status}\tabc1234567\t${sessionId}\tnextflow run nf-core/rnaseq -profile slurm -resume\n`

/** Nextflow's HistoryFile.update: the run's line set to OK, the whole file written again in place */
function end (file: string, runName: string): void {
  const text = readFileSync(file, 'utf8').split('\n').map(l => {
    const c = l.split('\t')
    return c[2] === runName ? [c[0], '12m 4s', c[2], 'OK', ...c.slice(4)].join('\t') : l
  }).join('\n')
  writeFileSync(file, text)
}

t.test('a fresh run and a -resume in a launch dir of 3,000 runs', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-long-history-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(join(dir, '.nextflow'))
  const file = join(dir, '.nextflow', 'history')
  const old = randomUUID()
  let text = line('first_run', old)
  for (let i = 1; i < 3000; i++) text += line(`run_${i}`, randomUUID())
  writeFileSync(file, text)
  t.ok(text.length > 4 * CHECKPOINT_LAG)
  const uid = process.getuid!()
  const cps = createCheckpoints()

  t.equal(await historyMarkOf(dir, uid, cps), 3000, 'the mark: every record')
  t.equal(cps.size, 1, 'a checkpoint was left near the end')

  // A fresh run armed at 3000.
  const fresh = { launchDir: dir, uid, sessionId: randomUUID(), historyMark: 3000, runName: null }
  t.equal((await observeRun(fresh, cps)).history, null, 'nothing yet')
  appendFileSync(file, line('fresh_run', fresh.sessionId, '-'))
  let obs = await observeRun(fresh, cps)
  t.same([obs.history?.index, obs.history?.runName, obs.history?.status, obs.historyCount], [3000, 'fresh_run', 'running', 3001])
  end(file, 'fresh_run')
  obs = await observeRun({ ...fresh, runName: 'fresh_run' }, cps)
  t.same([obs.history?.index, obs.history?.status], [3000, 'OK'], 'its end, after the file was written again')

  // A -resume of the first run: its session's only line is the first of the file, far before the checkpoint.
  const resumed = { launchDir: dir, uid, sessionId: old, historyMark: await historyMarkOf(dir, uid, cps), runName: null }
  t.equal(resumed.historyMark, 3001)
  obs = await observeRun(resumed, cps)
  t.same([obs.history?.index, obs.history?.runName], [0, 'first_run'], 'before its start, the session\'s old line, as a whole read finds it')
  appendFileSync(file, line('resumed_run', old, '-'))
  obs = await observeRun(resumed, cps)
  t.same([obs.history?.index, obs.history?.runName, obs.history?.status], [3001, 'resumed_run', 'running'], 'then its own new line')
  end(file, 'resumed_run')
  obs = await observeRun({ ...resumed, runName: 'resumed_run' }, cps)
  t.same([obs.history?.index, obs.history?.status, obs.historyCount], [3001, 'OK', 3002])
  t.equal(cps.size, 1, 'one checkpoint for the dir all along')
})
