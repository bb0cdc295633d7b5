// The lifecycle's changes to one run record (record-changes.ts), as tables: pure, no ledger.
import t from 'tap'
import { endRecord, startRecord, wrapperGoneRecord } from '../../daemon/runs/record-changes.js'
import type { RunRecord, TargetName } from '../../daemon/types.js'
import { armedRecord } from '../helpers/runs.js'

const at = new Date('2026-11-25T12:00:00Z')
const later = new Date('2026-11-25T12:05:00Z')
const base = armedRecord(['memory', 'hpc'], at)
const rec = (over: Partial<RunRecord> = {}): RunRecord => structuredClone({ ...base, ...over })
const clock = (): Date => later

t.test('startRecord', async t => {
  const started = startRecord(rec(), { runName: 'happy_turing', pid: 42 }, 7, clock)
  t.match(started, { state: 'running', startedAt: later.toISOString(), expiresAt: null, runName: 'happy_turing', pid: 42, pidStart: 7 }, 'armed -> running, name and pid taken')
  t.equal(startRecord(rec({ state: 'running', runName: 'a', pid: 1 }), { runName: 'b', pid: 2 }, 3, clock), null, 'running, name and pid known: no change')
  t.match(startRecord(rec({ state: 'running', runName: 'a', pid: null }), { pid: 2 }, 3, clock), { runName: 'a', pid: 2, pidStart: 3 }, 'a pid where none was')
  t.equal(startRecord(rec({ state: 'killed' }), { runName: 'x' }, null, clock), null, 'a terminal run is left alone')
})

t.test('endRecord', async t => {
  const holding = rec({ targets: { memory: { state: 'provisioned' }, hpc: { state: 'provisioning' } } as RunRecord['targets'] })
  const onlyMemory = (n: TargetName): boolean => n === 'memory'
  const ended = endRecord(holding, { state: 'failed', reason: 'why', exit: { exitCode: 2 } }, onlyMemory, clock)
  t.match(ended, { state: 'failed', endedAt: later.toISOString(), endReason: 'why', exitCode: 2 }, 'ended with its reason and exit')
  t.equal(ended?.targets.memory?.state, 'revoking', 'a configured target that holds something is revoking')
  t.equal(ended?.targets.hpc?.state, 'provisioning', 'a target not configured here is left as it is')
  t.equal(endRecord(rec({ state: 'completed' }), { state: 'killed', reason: '', exit: {} }, onlyMemory, clock), null, 'first end wins')
  t.equal(endRecord(rec({ state: 'running' }), { state: 'expired', reason: '', exit: {} }, onlyMemory, clock), null, 'a running run does not expire')
  t.equal(endRecord(rec(), { state: 'killed', reason: '', exit: {}, onlyIf: () => false }, onlyMemory, clock), null, 'onlyIf no longer holds')
  t.equal(endRecord(rec(), { state: 'killed', reason: '', exit: {}, onlyIf: () => true }, onlyMemory, clock)?.state, 'killed', 'onlyIf holds')
})

t.test('wrapperGoneRecord', async t => {
  t.match(wrapperGoneRecord(rec({ state: 'running', pid: 5, pidStart: 6 }), { exitCode: 0 }), { exitCode: 0, signal: null, pid: null, pidStart: null }, 'exit kept, pid dropped')
  t.equal(wrapperGoneRecord(rec({ state: 'failed' }), {}), null, 'a terminal run is left alone')
})
