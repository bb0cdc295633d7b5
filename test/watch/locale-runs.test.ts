// Issue 14's reproductions on real files, as root with a real user: a Nextflow JVM in another locale and zone than
// the daemon's. The daemon here runs in UTC; the fake JVM writes its history in New York's wall clock, or its log
// and history in Persian (logback 1.2's SimpleDateFormat: Persian digits), with a host name that does not resolve.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { UserDirectory } from '../../daemon/identity/users.js'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import type { Teardown } from '../helpers/runs.js'
import { requireUsers } from '../helpers/requires.js'
import { labWatchFixture, projectDir, waitFor, type WatchFixture } from '../helpers/watch.js'

// The daemon's zone. Node reads TZ again whenever it changes; nothing has formatted a local date yet.
process.env.TZ = 'UTC'

const [alice] = requireUsers(t, ['alice'])

interface Case { locale: string, zone: string, log: string, logLegacy: string, history: string }
const cases = (JSON.parse(readFileSync(new URL('../fixtures/nextflow-locales/formats.json', import.meta.url), 'utf8')) as { cases: Case[] }).cases

async function fixture (t: Teardown, monitorMs: number): Promise<{ f: WatchFixture, dir: string }> {
  const f = await labWatchFixture(t, ['memory'], { monitorMs })
  return { f, dir: await projectDir(f, 'alice-proj', alice!) }
}

t.test('a start written in New York\'s wall clock, read by a daemon in UTC, becomes an auto-run', async t => {
  // the monitor's pass too, as in the daemon: this test is about the start, whichever path sees the end
  const { f, dir } = await fixture(t, 500)
  const nf = await startFakeNextflow({ launchDir: dir, uid: alice!.uid, gid: alice!.gid, jvm: { historyZone: 'America/New_York' } })
  t.teardown(() => nf.close())
  const line = readFileSync(join(dir, '.nextflow', 'history'), 'utf8')
  t.not(line.slice(0, 13), new Date().toISOString().slice(0, 13).replace('T', ' '), 'the line is not in UTC')
  // Before the fix the line's time was read as the daemon's local time: 300 minutes old, a leftover, skipped.
  await waitFor('the auto-run', () => f.ledger.all().some(r => r.mode === 'auto' && r.runName === nf.runName && r.state === 'running'))
  t.notOk(f.events.some(e => e.type === 'run.skipped'), 'nothing skipped')
  await nf.finish('OK')
  await waitFor('its end', () => f.ledger.all().some(r => r.mode === 'auto' && r.state === 'completed'))
})

t.test('a Persian JVM on a host whose name does not resolve: the armed run starts, keeps its pid, ends when killed', async t => {
  const fa = cases.find(c => c.locale === 'fa-IR' && /[۰-۹]/.test(c.history))!
  const { f, dir } = await fixture(t, 200)
  const users = new UserDirectory({ mode: 'system', adminGroup: 'nf-secrets-admin', daemonUid: 0 })
  const created = await f.runs.create(users.callerForUid(alice!.uid), { mode: 'arm', launchDir: dir, targets: ['memory'], workspace: 'lab' })
  const nf = await startFakeNextflow({
    launchDir: dir,
    uid: alice!.uid,
    gid: alice!.gid,
    sessionId: created.sessionId,
    unresolvedHost: true,
    jvm: { logDate: fa.logLegacy, historyDate: fa.history }
  })
  t.teardown(() => nf.close())
  t.match(readFileSync(join(dir, '.nextflow.log'), 'utf8'), /Process: \d+@localhost null/)
  // Before the fix the history line was dropped (the run stayed armed until its TTL) and the pid was lost.
  await waitFor('the armed run starts', () => f.ledger.get(created.runId)?.state === 'running')
  const run = f.ledger.get(created.runId)!
  t.equal(run.runName, nf.runName)
  t.equal(run.pid, nf.pid, 'the pid from `Process: PID@localhost null`')
  t.equal(f.memory.placed.get(created.runId)?.get('LAB_TOKEN'), 'lab-secret-1')
  await nf.kill()
  await waitFor('the kill is seen', () => f.ledger.get(created.runId)?.state === 'killed')
  t.notOk(f.memory.placed.has(created.runId), 'revoked')
})
