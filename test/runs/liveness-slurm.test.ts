import t from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  classifyState, combineStates, parseScontrol, parseSqueue, slurmJobState, type CommandResult
} from '../../daemon/runs/liveness/slurm.js'

const ok = (stdout: string): CommandResult => ({ code: 0, stdout, stderr: '' })
const fail = (stderr: string, code = 1): CommandResult => ({ code, stdout: '', stderr })
const notRun = (error: string): CommandResult => ({ code: null, stdout: '', stderr: '', error })

t.test('classifyState table', async (t) => {
  const cases: Array<[string, string]> = [
    ['PENDING', 'pending'], ['REQUEUED', 'pending'], ['REQUEUE_HOLD', 'pending'], ['SPECIAL_EXIT', 'pending'],
    ['RUNNING', 'running'], ['CONFIGURING', 'running'], ['COMPLETING', 'running'], ['SUSPENDED', 'running'],
    ['STAGE_OUT', 'running'], ['SIGNALING', 'running'],
    ['COMPLETED', 'gone'], ['CANCELLED', 'gone'], ['CANCELLED+', 'gone'], ['FAILED', 'gone'], ['TIMEOUT', 'gone'],
    ['NODE_FAIL', 'gone'], ['PREEMPTED', 'gone'], ['OUT_OF_MEMORY', 'gone'], ['BOOT_FAIL', 'gone'], ['DEADLINE', 'gone'],
    ['running', 'running'], [' RUNNING \n', 'running'], ['RUNNING by 0', 'running'],
    ['SOMETHING_NEW', 'unknown'], ['', 'unknown']
  ]
  for (const [raw, want] of cases) t.equal(classifyState(raw), want, JSON.stringify(raw))
})

t.test('combineStates: array jobs are gone only when every task is', async (t) => {
  t.equal(combineStates(['gone', 'running', 'pending']), 'running')
  t.equal(combineStates(['gone', 'pending']), 'pending')
  t.equal(combineStates(['gone', 'unknown']), 'unknown')
  t.equal(combineStates(['gone', 'gone']), 'gone')
  t.equal(combineStates([]), 'unknown')
})

t.test('parseSqueue table (null = ask scontrol)', async (t) => {
  const cases: Array<[string, CommandResult, string | null]> = [
    ['pending', ok('PENDING\n'), 'pending'],
    ['running', ok('RUNNING\n'), 'running'],
    ['array tasks', ok('PENDING\nRUNNING\nPENDING\n'), 'running'],
    ['ended but still listed', ok('COMPLETING\n'), 'running'],
    ['not in the active queue', ok(''), null],
    ['invalid job id', fail('slurm_load_jobs error: Invalid job id specified\n'), null],
    ['controller down', fail('slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n'), null],
    ['binary missing', notRun('ENOENT'), null],
    ['timed out', notRun('timeout'), null]
  ]
  for (const [name, r, want] of cases) t.equal(parseSqueue(r), want, name)
})

t.test('parseScontrol table', async (t) => {
  const rec = (state: string): string =>
    `JobId=42 JobName=wrap\n   UserId=root(0) GroupId=root(0) MCS_label=N/A\n   JobState=${state} Reason=None Dependency=(null)\n`
  const cases: Array<[string, CommandResult, string]> = [
    ['cancelled', ok(rec('CANCELLED')), 'gone'],
    ['completed', ok(rec('COMPLETED')), 'gone'],
    ['running', ok(rec('RUNNING')), 'running'],
    ['array: one task still pending', ok(rec('COMPLETED') + '\n' + rec('PENDING')), 'pending'],
    ['purged from the controller', fail('slurm_load_jobs error: Invalid job id specified\n'), 'gone'],
    ['controller down', fail('slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n'), 'unknown'],
    ['bad config', fail('scontrol: fatal: Unable to process configuration file\n'), 'unknown'],
    ['exit 0 but nothing parseable', ok('No jobs in the system\n'), 'unknown'],
    ['binary missing', notRun('ENOENT'), 'unknown'],
    ['timed out', notRun('timeout'), 'unknown']
  ]
  for (const [name, r, want] of cases) t.equal(parseScontrol(r), want, name)
})

t.test('job ids that could be read as options are refused before any command runs', async (t) => {
  for (const bad of ['', '-h', '--me', '12 13', '12;rm', 'abc', '1_2_3']) {
    await t.rejects(slurmJobState(bad, { squeue: '/nonexistent', scontrol: '/nonexistent' }), { code: 'NFS_ERR_BAD_REQUEST' }, JSON.stringify(bad))
  }
})

t.test('Slurm binaries missing: unknown, not gone', async (t) => {
  t.equal(await slurmJobState('42', { squeue: '/nonexistent/squeue', scontrol: '/nonexistent/scontrol' }), 'unknown')
})

t.test('Slurm config unreadable: unknown, not gone', async (t) => {
  // real squeue/scontrol failing as on a broken node (they retry the config for a minute: the timeout ends it)
  const env = { ...process.env, SLURM_CONF: '/nonexistent/slurm.conf' }
  t.equal(await slurmJobState('42', { env, timeoutMs: 1500 }), 'unknown')
})

t.test('a command that hangs is cut by the timeout and gives unknown', async (t) => {
  // stands in for a squeue stuck on an unresponsive controller: it would answer COMPLETED (= gone) much later
  const dir = await mkdtemp(join(tmpdir(), 'nfs-slurm-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const slow = join(dir, 'slow-slurm')
  await writeFile(slow, '#!/bin/sh\nsleep 30\necho JobState=COMPLETED\n', { mode: 0o755 })
  t.equal(await slurmJobState('42', { squeue: slow, scontrol: slow, timeoutMs: 300 }), 'unknown')
})
