import t from 'tap'
import type { Test } from 'tap'
import { chown, lstat, mkdtemp, readFile, rm } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { diffHistory, parseHistory, type HistoryRecord } from '../../daemon/nextflow/history.js'
import { parseLogMarkers } from '../../daemon/nextflow/log-markers.js'
import { isProcessAlive, processStartTime } from '../../daemon/runs/liveness/process.js'
import { sessionLockHolder } from '../../daemon/runs/liveness/session-lock.js'
import { formatDuration, startFakeNextflow, type FakeNextflow, type FakeNextflowOptions } from './fake-nextflow.js'
import { whyNotRoot } from './requires.js'

async function launchDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nfs-fake-nf-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

async function start (t: Test, opts: FakeNextflowOptions): Promise<FakeNextflow> {
  const nf = await startFakeNextflow(opts)
  t.teardown(() => nf.close())
  return nf
}

async function history (dir: string): Promise<HistoryRecord[]> {
  const parsed = parseHistory(await readFile(join(dir, '.nextflow', 'history'), 'utf8'))
  return parsed.records
}

async function markers (dir: string, file = '.nextflow.log'): Promise<ReturnType<typeof parseLogMarkers>> {
  return parseLogMarkers(await readFile(join(dir, file), 'utf8'))
}

const gone = async (path: string): Promise<boolean> => lstat(path).then(() => false, () => true)

t.test('running: log markers, history `-`, lock held by the logged pid', async (t) => {
  const dir = await launchDir(t)
  const nf = await start(t, { launchDir: dir })
  const m = await markers(dir)
  t.equal(m.sessionId, nf.sessionId)
  t.equal(m.runName, nf.runName)
  t.equal(m.pid, nf.pid)
  t.equal(m.host, hostname())
  t.same(m.launching, { script: 'main.nf', runName: nf.runName, revision: m.launching?.revision })
  t.match(m.launching?.revision, /^[0-9a-f]{10}$/)
  t.equal(m.goodbye, false)
  t.equal(m.aborted, false)
  const recs = await history(dir)
  t.same(recs.map((r) => [r.runName, r.sessionId, r.status, r.duration]), [[nf.runName, nf.sessionId, 'running', null]])
  t.equal(await gone(join(dir, '.nextflow', 'history.lock')), true, 'history.lock is removed after the append')
  t.same(await sessionLockHolder(dir, nf.sessionId), { held: true, pid: nf.pid })
  t.equal(await isProcessAlive(nf.pid, await processStartTime(nf.pid)), true)
  t.equal(await gone(join(dir, '.nextflow', 'cache', nf.sessionId, `index.${nf.runName}`)), false, 'index.<runName> exists')
})

t.test('finish OK: history rewritten with OK and a duration, Goodbye, lock released, exit 0', async (t) => {
  const dir = await launchDir(t)
  const nf = await start(t, { launchDir: dir, runName: 'calm_euler' })
  const before = await history(dir)
  const startTime = await processStartTime(nf.pid)
  t.equal(await nf.finish('OK'), 0)
  const after = await history(dir)
  t.same(after.map((r) => [r.runName, r.status]), [['calm_euler', 'OK']])
  t.match(after[0]?.duration, /^\d+(ms|(\.\d)?s)$/)
  t.same(diffHistory(before, after).ended.map((r) => r.runName), ['calm_euler'])
  const m = await markers(dir)
  t.equal(m.goodbye, true)
  t.equal(m.aborted, false)
  t.same(await sessionLockHolder(dir, nf.sessionId), { held: false, pid: null })
  t.equal(await isProcessAlive(nf.pid, startTime), false)
  t.equal(await gone(join(dir, '.nextflow', 'history.lock')), true)
  const text = await readFile(join(dir, '.nextflow.log'), 'utf8')
  t.ok(text.indexOf('Closing CacheDB done') < text.indexOf('> Execution complete -- Goodbye'), 'DB closed before Goodbye')
  t.match(text, /Launcher - \$> nextflow run main\.nf -name calm_euler\n/)
})

t.test('finish ERR: ERR in history, Session aborted and Goodbye in the log, exit 1', async (t) => {
  const dir = await launchDir(t)
  const nf = await start(t, { launchDir: dir })
  t.equal(await nf.finish('ERR', 'SIGTERM'), 1)
  t.same((await history(dir)).map((r) => r.status), ['ERR'])
  const m = await markers(dir)
  t.equal(m.aborted, true)
  t.equal(m.abortCause, 'SIGTERM')
  t.equal(m.goodbye, true)
  t.same(await sessionLockHolder(dir, nf.sessionId), { held: false, pid: null })
  await t.rejects(nf.finish('OK'), 'a run ends once')
})

t.test('kill: history stays `-`, no Goodbye, the kernel drops the lock', async (t) => {
  const dir = await launchDir(t)
  const nf = await start(t, { launchDir: dir })
  await nf.kill()
  t.same((await history(dir)).map((r) => r.status), ['running'])
  const m = await markers(dir)
  t.equal(m.goodbye, false)
  t.equal(m.pid, nf.pid)
  t.same(await sessionLockHolder(dir, nf.sessionId), { held: false, pid: null })
  t.equal(await isProcessAlive(nf.pid, null), false)
  t.equal(await nf.exited, null, 'killed by a signal')
  await nf.kill()
})

t.test('runs in one dir: logs roll, a resume reuses the UUID, concurrent runs keep their own lines', async (t) => {
  const dir = await launchDir(t)
  const first = await start(t, { launchDir: dir })
  await first.finish('ERR')
  const resumed = await start(t, { launchDir: dir, sessionId: first.sessionId, resume: true })
  t.not(resumed.runName, first.runName, 'a new runName')
  t.equal((await markers(dir, '.nextflow.log.1')).runName, first.runName, 'the first log rolled to .1')
  t.equal((await markers(dir)).runName, resumed.runName)
  t.match(await readFile(join(dir, '.nextflow.log'), 'utf8'), `-resume ${first.sessionId}`)
  t.same(await sessionLockHolder(dir, first.sessionId), { held: true, pid: resumed.pid }, 'the resumed run holds the same session lock')

  const other = await start(t, { launchDir: dir })
  t.equal((await markers(dir, '.nextflow.log.2')).runName, first.runName, 'older logs shift up')
  t.equal((await markers(dir, '.nextflow.log.1')).runName, resumed.runName)
  const before = await history(dir)
  t.same(before.map((r) => [r.runName, r.status]), [[first.runName, 'ERR'], [resumed.runName, 'running'], [other.runName, 'running']])
  t.equal(before[0]?.sessionId, before[1]?.sessionId)

  await resumed.finish('OK')
  const after = await history(dir)
  t.same(after.map((r) => [r.runName, r.status]), [[first.runName, 'ERR'], [resumed.runName, 'OK'], [other.runName, 'running']])
  t.same(diffHistory(before, after), { started: [], ended: [after[1]] })
  // the resumed JVM kept writing through its own fd, now .nextflow.log.1
  t.equal((await markers(dir, '.nextflow.log.1')).goodbye, true)
  t.equal((await markers(dir)).goodbye, false)
  t.same(await sessionLockHolder(dir, other.sessionId), { held: true, pid: other.pid })
})

t.test('writePidFile: `-bg` style .nextflow.pid', async (t) => {
  const dir = await launchDir(t)
  const nf = await start(t, { launchDir: dir })
  await nf.writePidFile()
  t.equal(await readFile(join(dir, '.nextflow.pid'), 'utf8'), `${nf.pid}\n`)
})

t.test('uid/gid: the child and every file it writes belong to that user', { skip: whyNotRoot() }, async (t) => {
  // a numeric id with no passwd entry: no system user is created or needed
  const uid = 4242
  const gid = 4243
  const dir = await launchDir(t)
  await chown(dir, uid, gid)
  const nf = await start(t, { launchDir: dir, uid, gid })
  await nf.writePidFile()
  const status = await readFile(`/proc/${nf.pid}/status`, 'utf8')
  t.match(status, new RegExp(`\\nUid:\\t${uid}\\t`))
  t.match(status, new RegExp(`\\nGid:\\t${gid}\\t`))
  for (const p of ['.nextflow.log', '.nextflow', '.nextflow/history', `.nextflow/cache/${nf.sessionId}/db/LOCK`, '.nextflow.pid']) {
    const st = await lstat(join(dir, p))
    t.same([st.uid, st.gid], [uid, gid], p)
  }
  t.same(await sessionLockHolder(dir, nf.sessionId), { held: true, pid: nf.pid })
  t.equal(await nf.finish('OK'), 0)
  const st = await lstat(join(dir, '.nextflow', 'history'))
  t.same([st.uid, st.gid], [uid, gid], 'history still theirs after the rewrite')
})

t.test('resume without a sessionId is refused', async (t) => {
  const dir = await launchDir(t)
  await t.rejects(startFakeNextflow({ launchDir: dir, resume: true }))
})

t.test('formatDuration follows nextflow.util.Duration', async (t) => {
  const cases: Array<[number, string]> = [
    [850, '850ms'], [5000, '5s'], [41_300, '41.3s'], [134_000, '2m 14s'], [3_785_000, '1h 3m 5s'], [187_200_000, '2d 4h']
  ]
  for (const [ms, want] of cases) t.equal(formatDuration(ms), want, String(ms))
})
