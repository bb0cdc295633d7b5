import t, { type Test } from 'tap'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  classifyState, combineStates, IDS_PER_CALL, parseQueue, querySlurmJobs, taskRangeHas, type CommandResult, type SlurmJob
} from '../../daemon/runs/liveness/slurm.js'
import { SlurmJobs } from '../../daemon/runs/liveness/slurm-jobs.js'

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

t.test('taskRangeHas table', async (t) => {
  const cases: Array<[string, number, boolean]> = [
    ['2', 2, true], ['2', 3, false], ['[1-3]', 3, true], ['1-3', 4, false], ['[1,4-9:2%5]', 7, false],
    ['[1,4-9:2%5]', 6, true], ['[1,4-9:2%5]', 1, true], ['N/A', 1, false], ['', 1, false]
  ]
  for (const [field, k, want] of cases) t.equal(taskRangeHas(field, k), want, `${field} has ${k}`)
})

// Rows as `squeue -h -t all -o '%i|%A|%F|%K|%T|%U'` prints them (seen on Slurm 22.05).
const row = (i: string, a: string, f: string, k: string, state: string, uid: number): string => `${i}|${a}|${f}|${k}|${state}|${uid}\n`

t.test('parseQueue table: one answer for every asked id', async (t) => {
  const plain = row('7', '7', '7', 'N/A', 'RUNNING', 1001) + row('9', '9', '9', 'N/A', 'CANCELLED', 1002)
  const array = row('3_[2-3]', '3', '3', '2-3', 'PENDING', 1001) + row('3_1', '4', '3', '1', 'RUNNING', 1001)
  const ended = row('3_[2-3]', '3', '3', '2-3', 'CANCELLED', 1001) + row('3_1', '4', '3', '1', 'COMPLETED', 1001)
  const cases: Array<[string, CommandResult, string[], Record<string, SlurmJob> | null]> = [
    ['plain jobs, and one the controller does not know', ok(plain), ['7', '9', '424242'],
      { 7: { state: 'running', uid: 1001 }, 9: { state: 'gone', uid: 1002 }, 424242: { state: 'gone', uid: null } }],
    ['a whole array: any task running wins', ok(array), ['3'], { 3: { state: 'running', uid: 1001 } }],
    ['an array task by its own job id (SLURM_JOB_ID)', ok(array), ['4'], { 4: { state: 'running', uid: 1001 } }],
    ['an array task still pending in the compact record', ok(array), ['3_2'], { '3_2': { state: 'pending', uid: 1001 } }],
    ['an array task by N_k once split off', ok(array), ['3_1'], { '3_1': { state: 'running', uid: 1001 } }],
    ['an array whose tasks all ended', ok(ended), ['3'], { 3: { state: 'gone', uid: 1001 } }],
    ['a state this code does not know is unknown', ok(row('7', '7', '7', 'N/A', 'NEW_STATE', 1001)), ['7'], { 7: { state: 'unknown', uid: 1001 } }],
    ['nothing listed: the controller knows none of them', ok(''), ['1', '2'], { 1: { state: 'gone', uid: null }, 2: { state: 'gone', uid: null } }],
    ['a single unknown id is an error exit', fail('slurm_load_jobs error: Invalid job id specified\n'), ['5'], { 5: { state: 'gone', uid: null } }],
    ['controller down', fail('slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n'), ['7'], null],
    ['invalid-id text from a list call is not trusted', fail('Invalid job id specified\n'), ['7', '8'], null],
    ['binary missing', notRun('ENOENT'), ['7'], null],
    ['deadline passed', notRun('deadline'), ['7'], null]
  ]
  for (const [name, r, asked, want] of cases) {
    const got = parseQueue(r, asked)
    t.same(got === null ? null : Object.fromEntries(got), want, name)
  }
})

/** A squeue stand-in that logs each call's argv and prints `script`'s output. */
async function shim (t: Test, script: string): Promise<{ path: string, calls: () => Promise<string[][]> }> {
  const dir = await mkdtemp(join(tmpdir(), 'nfs-slurm-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'squeue')
  const log = join(dir, 'calls')
  await writeFile(path, `#!/bin/bash\nprintf '%s\\0' "$@" >> ${log}; echo >> ${log}\n${script}\n`, { mode: 0o755 })
  return {
    path,
    calls: async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(l => l !== '').map(l => l.split('\0').slice(0, -1))
  }
}

t.test('querySlurmJobs: one squeue call for all ids, and ids that could be read as options never reach it', async (t) => {
  const s = await shim(t, "echo '7|7|7|N/A|RUNNING|1001'")
  const ids = ['7', '8', '7', '-h', '--me', '12 13', '1_2_3', '']
  const got = await querySlurmJobs(ids, { squeue: s.path })
  t.same(Object.fromEntries(got!), { 7: { state: 'running', uid: 1001 }, 8: { state: 'gone', uid: null } })
  const calls = await s.calls()
  t.equal(calls.length, 1)
  t.same(calls[0], ['-h', '-t', 'all', '-j', '7,8', '-o', '%i|%A|%F|%K|%T|%U'])
})

t.test('querySlurmJobs: more ids than fit one argument are split, still far fewer calls than runs', async (t) => {
  const s = await shim(t, 'true')
  const ids = Array.from({ length: IDS_PER_CALL + 5 }, (_, i) => String(1000 + i))
  const got = await querySlurmJobs(ids, { squeue: s.path })
  t.equal(got!.size, ids.length)
  t.equal((await s.calls()).length, 2)
})

t.test('Slurm binaries missing or config unreadable: not asked (null), never gone', async (t) => {
  t.equal(await querySlurmJobs(['42'], { squeue: '/nonexistent/squeue' }), null)
  // the real squeue failing as on a broken node (it retries the config for a minute: the deadline ends it)
  t.equal(await querySlurmJobs(['42'], { env: { ...process.env, SLURM_CONF: '/nonexistent/slurm.conf' }, deadlineMs: 1500 }), null)
})

t.test('a squeue that hangs is killed at its deadline, with what it started, and gives null', async (t) => {
  // stands in for a squeue stuck on an unresponsive controller: it would answer COMPLETED (= gone) much later
  const s = await shim(t, "sleep 30 & echo $! > \"$(dirname \"$0\")/sleep.pid\"; wait; echo '42|42|42|N/A|COMPLETED|0'")
  t.equal(await querySlurmJobs(['42'], { squeue: s.path, deadlineMs: 300 }), null)
  const pid = Number(await readFile(join(s.path, '..', 'sleep.pid'), 'utf8'))
  // SIGKILL was sent to the whole group at the deadline; it is dead once gone or a zombie waiting for its reaper.
  const dead = async (): Promise<boolean> => {
    for (let i = 0; i < 100; i++) {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null)
      if (stat === null || / Z /.test(stat.slice(stat.lastIndexOf(')')))) return true
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    return false
  }
  t.ok(await dead(), 'the stuck child of squeue is killed too')
})

t.test('SlurmJobs: one question at a time, reads never wait, forgotten jobs are dropped', async (t) => {
  const asked: string[][] = []
  let release: (v: Map<string, SlurmJob> | null) => void = () => {}
  const jobs = new SlurmJobs(async ids => { asked.push([...ids]); return await new Promise(resolve => { release = resolve }) })
  t.equal(jobs.state('7'), 'unknown', 'nothing asked yet')
  const first = jobs.refresh(['7', '8', '7'])
  const second = jobs.refresh(['7', '8', '9'])
  t.equal(asked.length, 1, 'a second pass while the first call is out asks nothing')
  t.same(asked[0], ['7', '8'])
  t.equal(jobs.state('7'), 'unknown', 'a read while Slurm is out does not wait')
  release(new Map([['7', { state: 'running', uid: 1 }], ['8', { state: 'gone', uid: 1 }]]))
  t.equal(await first, true)
  t.equal(await second, true)
  t.equal(jobs.state('7'), 'running')
  t.equal(jobs.state('8'), 'gone')
  const third = jobs.refresh(['7'])
  release(null)
  t.equal(await third, false, 'Slurm not answering')
  t.equal(jobs.state('8'), 'gone', 'an unanswered call changes nothing')
  const fourth = jobs.refresh(['7'])
  release(new Map([['7', { state: 'running', uid: 1 }]]))
  await fourth
  t.equal(jobs.state('8'), 'unknown', 'a job no live run names any more is forgotten')
})

t.test('SlurmJobs.owner: the uid Slurm records, null for a job it does not know, refused when Slurm is out', async (t) => {
  let answer: Map<string, SlurmJob> | null = new Map([['7', { state: 'pending', uid: 1001 }]])
  const jobs = new SlurmJobs(async () => answer)
  t.equal(await jobs.owner('7'), 1001)
  t.equal(jobs.state('7'), 'pending', 'what the check learnt is known to the next pass')
  answer = new Map([['8', { state: 'gone', uid: null }]])
  t.equal(await jobs.owner('8'), null)
  answer = null
  await t.rejects(jobs.owner('7'), { code: 'NFS_ERR_TARGET_UNAVAILABLE' })
})
