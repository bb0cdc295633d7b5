// What the watcher keeps of a launch dir is bounded whatever its user writes (issue 13, finding 3): a history
// rewritten again and again with a fresh runName and a huge command column must not grow the heap (every record
// used to be kept, each a V8 substring pinning the whole file text); and the pure window rules.
import t from 'tap'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, appendFileSync } from 'node:fs'
import { randomUUID } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { LaunchDir, MAX_KNOWN } from '../../daemon/watch/launch-dir.js'
import { HISTORY_TAIL, MAX_LINE, MAX_RECORDS, historyWindow, own } from '../../daemon/nextflow/history-file.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

function line (runName: string, command = 'nextflow run main.nf', status = '-'): string {
  const ts = new Date().toISOString().slice(0, 19).replace('T', ' ')
  return `${ts}\t-\t${runName}\t${status}\tabc1234567\t${randomUUID()}\t${command}\n`
}

function launchDir (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-bounds-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(join(dir, '.nextflow'))
  writeFileSync(join(dir, '.nextflow', 'history'), '')
  return dir
}

function heapMb (): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed / 1024 / 1024
}

t.test('history rewritten 40 times with a fresh runName and a 4 MB command column: the heap stays flat', async t => {
  const dir = launchDir(t)
  const ld = (await LaunchDir.open(dir, true))!
  const huge = 'x'.repeat(4 * 1024 * 1024)
  await ld.scan({ history: true, log: false })
  const before = heapMb()
  let started = 0
  for (let i = 0; i < 40; i++) {
    writeFileSync(join(dir, '.nextflow', 'history'), line(`bomb_${i}`, huge))
    started += (await ld.scan({ history: true, log: true })).events.filter(e => e.type === 'run-started').length
  }
  const grown = heapMb() - before
  // Before the fix: every record was kept and pinned its 4 MB text: about 160 MB here.
  t.ok(grown < 40, `heap grew ${grown.toFixed(1)} MB over 40 rewrites`)
  t.equal(started, 0, 'a line longer than any real one is ignored')
  t.ok(ld.knownRuns <= MAX_KNOWN)

  // A real line after all that is still seen.
  writeFileSync(join(dir, '.nextflow', 'history'), line('real_run'))
  const { events } = await ld.scan({ history: true, log: false })
  t.same(events.filter(e => e.type === 'run-started').map(e => e.type === 'run-started' ? e.record.runName : ''), ['real_run'])
})

t.test('1,000 fresh runNames appended one by one: what is kept stays at MAX_KNOWN, and each start is seen once', async t => {
  const dir = launchDir(t)
  const ld = (await LaunchDir.open(dir, true))!
  const seen: string[] = []
  for (let i = 0; i < 1000; i++) {
    appendFileSync(join(dir, '.nextflow', 'history'), line(`run_${i}`, 'nextflow run nf-core/rnaseq -profile docker --input samples.csv'))
    for (const e of (await ld.scan({ history: true, log: false })).events) if (e.type === 'run-started') seen.push(e.record.runName)
  }
  t.equal(seen.length, 1000)
  t.equal(new Set(seen).size, 1000, 'no start is raised twice')
  t.ok(ld.knownRuns <= MAX_KNOWN, `kept ${ld.knownRuns} runNames`)
})

t.test('historyWindow: a cut first line, overlong lines and old records are left out (pure)', async t => {
  const a = line('alpha')
  const b = line('bravo')
  t.same(historyWindow(a + b, 0).records.map(r => r.runName), ['alpha', 'bravo'])
  t.same(historyWindow(a.slice(5) + b, 5).records.map(r => r.runName), ['bravo'], 'a tail read drops its first, cut line')
  t.same(historyWindow(line('long', 'y'.repeat(MAX_LINE)) + b, 0).records.map(r => r.runName), ['bravo'])
  t.same(historyWindow(a + line('last', 'z'.repeat(MAX_LINE)).trimEnd(), 0), { records: historyWindow(a, 0).records, partial: false }, 'an unterminated overlong last line is not a torn write')
  const many = Array.from({ length: MAX_RECORDS + 10 }, (_, i) => line(`r_${i}`)).join('')
  const w = historyWindow(many, 0)
  t.equal(w.records.length, MAX_RECORDS)
  t.equal(w.records[0]!.runName, 'r_10')
  t.equal(w.records[0]!.index, 0)
  t.ok(HISTORY_TAIL > 100 * 200, 'the tail holds well over a hundred real lines')
  t.equal(own('abc'), 'abc')
  t.equal(own('a'.repeat(40)), 'a'.repeat(40))
})
