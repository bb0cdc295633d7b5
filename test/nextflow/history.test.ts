import t from 'tap'
import { readFileSync } from 'node:fs'
import { diffHistory, parseHistory, type HistoryRecord } from '../../daemon/nextflow/history.js'

const fixture = (name: string): string =>
  readFileSync(new URL(`../fixtures/nextflow/${name}`, import.meta.url), 'utf8')

const UUID_A = '4e2a9c1d-7b3f-4a8e-9d6c-2f1e0b3a4c5d'
const UUID_B = '91f3b2c4-0d5e-4f6a-8b7c-3e4d5f6a7b8c'

function line (ts: string, dur: string, name: string, status: string, uuid = UUID_A, cmd = 'nextflow run main.nf'): string {
  return [ts, dur, name, status, 'a41c7e0b93d25f1e8c6a7b4d2e9f0c13', uuid, cmd].join('\t')
}

t.test('mixed file: terminal, resumed, running, legacy and garbage lines', async (t) => {
  const { records, partial } = parseHistory(fixture('history-mixed'))
  t.equal(partial, false)
  t.same(records.map((r) => [r.index, r.runName, r.status, r.duration]), [
    [0, 'sleepy_noether', 'OK', '3m 2s'],
    [1, 'brave_hypatia', 'ERR', '12.4s'],
    [2, 'eager_lovelace', 'OK', '1h 2m 7s'],
    [3, 'jolly_galois', 'running', null]
  ], 'legacy 2-column, garbage, blank and bad-status lines are skipped')
  t.equal(records[1]?.sessionId, UUID_B)
  t.equal(records[2]?.sessionId, UUID_B, 'a -resume reuses the session UUID')
  t.equal(records[2]?.command, 'nextflow run main.nf --input fixed.csv -resume')
  t.equal(records[3]?.revisionId, '0f9e8d7c6b5a493827161504f3e2d1c0b9a8f7e6')
  t.equal(records[0]?.timestamp, '2026-03-02 08:41:17')
})

t.test('a half-written last line is partial, not a record', async (t) => {
  const { records, partial } = parseHistory(fixture('history-partial'))
  t.equal(partial, true)
  t.same(records.map((r) => r.runName), ['sleepy_noether'])
})

t.test('table of whole texts', async (t) => {
  const running = line('2026-03-02 10:00:00', '-', 'mad_turing', '-')
  const cases: Array<{ name: string, text: string, names: string[], partial: boolean }> = [
    { name: 'empty file (caught mid-rewrite)', text: '', names: [], partial: false },
    { name: 'one running line', text: running + '\n', names: ['mad_turing'], partial: false },
    { name: '7 columns without the final newline is a record', text: running, names: ['mad_turing'], partial: false },
    { name: 'cut after 3 columns', text: running.split('\t').slice(0, 3).join('\t'), names: [], partial: true },
    { name: 'cut inside the timestamp', text: '2026-03-0', names: [], partial: true },
    { name: 'CRLF line endings', text: running + '\r\n', names: ['mad_turing'], partial: false },
    { name: 'an empty column makes 6 tokens: skipped', text: line('2026-03-02 10:00:00', '-', 'x_y', '-', UUID_A, '') + '\n', names: [], partial: false },
    { name: 'eight columns: skipped', text: running + '\textra\n', names: [], partial: false },
    { name: 'bad timestamp: skipped', text: line('Mar-02 10:00:00', '-', 'a_b', '-') + '\n', names: [], partial: false },
    { name: 'bad uuid: skipped', text: line('2026-03-02 10:00:00', '-', 'a_b', '-', 'not-a-uuid') + '\n', names: [], partial: false },
    { name: 'legacy 2 columns only', text: `${UUID_A}\tnextflow run x.nf\n`, names: [], partial: false }
  ]
  for (const c of cases) {
    const got = parseHistory(c.text)
    t.same(got.records.map((r) => r.runName), c.names, c.name)
    t.equal(got.partial, c.partial, `${c.name}: partial`)
  }
})

t.test('a whole-file rewrite is just reparsed', async (t) => {
  const before = [line('2026-03-02 10:00:00', '-', 'mad_turing', '-'), line('2026-03-02 10:01:00', '-', 'calm_euler', '-', UUID_B)].join('\n') + '\n'
  const after = [line('2026-03-02 10:00:00', '2m 1s', 'mad_turing', 'OK'), line('2026-03-02 10:01:00', '-', 'calm_euler', '-', UUID_B)].join('\n') + '\n'
  const a = parseHistory(before).records
  const b = parseHistory(after).records
  t.same(b.map((r) => [r.index, r.status]), [[0, 'OK'], [1, 'running']])
  const d = diffHistory(a, b)
  t.same(d.started, [])
  t.same(d.ended.map((r) => r.runName), ['mad_turing'])
})

t.test('diffHistory table', async (t) => {
  const mk = (runName: string, status: HistoryRecord['status'], index = 0, sessionId = UUID_A): HistoryRecord => ({
    index,
    timestamp: '2026-03-02 10:00:00',
    duration: status === 'running' ? null : '1s',
    runName,
    status,
    revisionId: 'r',
    sessionId,
    command: 'nextflow run main.nf'
  })
  const cases: Array<{ name: string, prev: HistoryRecord[], next: HistoryRecord[], started: string[], ended: string[] }> = [
    { name: 'nothing changed', prev: [mk('a_a', 'running')], next: [mk('a_a', 'running')], started: [], ended: [] },
    { name: 'new running line', prev: [], next: [mk('a_a', 'running')], started: ['a_a'], ended: [] },
    { name: 'new line already terminal (start missed)', prev: [], next: [mk('a_a', 'ERR')], started: ['a_a'], ended: ['a_a'] },
    { name: 'running turns OK', prev: [mk('a_a', 'running')], next: [mk('a_a', 'OK')], started: [], ended: ['a_a'] },
    { name: 'running turns ERR', prev: [mk('a_a', 'running')], next: [mk('a_a', 'ERR')], started: [], ended: ['a_a'] },
    { name: 'terminal stays terminal', prev: [mk('a_a', 'OK')], next: [mk('a_a', 'OK')], started: [], ended: [] },
    {
      name: 'a resume reuses the UUID under a new runName',
      prev: [mk('a_a', 'ERR', 0)],
      next: [mk('a_a', 'ERR', 0), mk('b_b', 'running', 1)],
      started: ['b_b'],
      ended: []
    },
    {
      name: 'two runs in one file, one ends while the other starts',
      prev: [mk('a_a', 'running', 0)],
      next: [mk('a_a', 'OK', 0), mk('b_b', 'running', 1, UUID_B)],
      started: ['b_b'],
      ended: ['a_a']
    },
    { name: 'a line vanishing (empty read mid-rewrite) is no event', prev: [mk('a_a', 'running')], next: [], started: [], ended: [] }
  ]
  for (const c of cases) {
    const d = diffHistory(c.prev, c.next)
    t.same(d.started.map((r) => r.runName), c.started, `${c.name}: started`)
    t.same(d.ended.map((r) => r.runName), c.ended, `${c.name}: ended`)
  }
})

t.test('a first read of an existing file starts every run and ends the terminal ones', async (t) => {
  const text = fixture('history-mixed')
  const d = diffHistory([], parseHistory(text).records)
  t.same(d.started.map((r) => r.index), [0, 1, 2, 3])
  t.same(d.ended.map((r) => r.runName), ['sleepy_noether', 'brave_hypatia', 'eager_lovelace'])
})
