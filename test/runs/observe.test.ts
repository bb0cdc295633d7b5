// observe.ts's pure rules: which history line is the run's, and when the log's pid names a process on this host.
import t from 'tap'
import { logPidOnHost, matchHistory } from '../../daemon/runs/observe.js'
import type { HistoryRecord } from '../../daemon/nextflow/history.js'

t.test('logPidOnHost', async t => {
  const table: Array<[string, Parameters<typeof logPidOnHost>[0], string, boolean, number | null]> = [
    ['no log', null, 'login01', false, null],
    ['no Process line', {}, 'login01', false, null],
    ['this host', { pid: 5, host: 'login01', ip: '10.0.0.5' }, 'login01', false, 5],
    ['this host, short and long names', { pid: 5, host: 'login01.cluster.example', ip: '10.0.0.5' }, 'login01', false, 5],
    ['another host', { pid: 5, host: 'node17', ip: '10.0.0.17' }, 'login01', false, null],
    ['the JDK\'s unresolved host (`PID@localhost null`)', { pid: 5, host: 'localhost' }, 'login01', false, 5],
    ['unresolved, but the head is a Slurm job elsewhere', { pid: 5, host: 'localhost' }, 'login01', true, null],
    ['a host really named localhost with an address is another host', { pid: 5, host: 'localhost', ip: '127.0.0.1' }, 'login01', false, null],
    ['a Slurm-bound run on this very host', { pid: 5, host: 'login01', ip: '10.0.0.5' }, 'login01', true, 5]
  ]
  for (const [name, log, host, slurm, want] of table) t.equal(logPidOnHost(log, host, slurm), want, name)
})

t.test('matchHistory', async t => {
  const rec = (index: number, runName: string, sessionId: string): HistoryRecord =>
    ({ index, timestamp: '2026-12-02 07:00:00', duration: null, runName, status: 'running', revisionId: 'r', sessionId, command: 'nextflow run x' })
  const records = [rec(0, 'a_a', 'u1'), rec(1, 'b_b', 'u2'), rec(2, 'c_c', 'u1')]
  t.equal(matchHistory(records, { runName: 'b_b', sessionId: 'u1', historyMark: null })?.runName, 'b_b', 'by runName first')
  t.equal(matchHistory(records, { runName: null, sessionId: 'u1', historyMark: null })?.runName, 'c_c', 'the last line of the UUID (a resume)')
  t.equal(matchHistory(records, { runName: null, sessionId: 'u9', historyMark: 1 })?.runName, 'b_b', 'the first line after the mark')
  t.equal(matchHistory(records, { runName: null, sessionId: 'u9', historyMark: 3 }), null, 'nothing yet')
})
