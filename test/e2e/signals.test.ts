// Signals on a real daemon process. SIGTERM (systemctl stop): WebSockets closed, socket removed, ledger intact, runs
// still provisioned, and the next start reconciles what ended meanwhile. SIGHUP (systemctl reload): the config is
// read again without dropping a connection; a broken file is refused and the running config kept.
import t from 'tap'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { Agent } from 'node:http'
import { join } from 'node:path'
import { once } from 'node:events'
import WebSocket from 'ws'
import { call, daemonDirs, spawnDaemon, writeConfig, type DaemonDirs, type LogLine, type SpawnedDaemon } from '../helpers/spawn-daemon.js'

t.setTimeout(300_000)

function openEvents (socket: string): Promise<{ ws: WebSocket, messages: Array<Record<string, unknown>> }> {
  const ws = new WebSocket(`ws+unix:${socket}:/api/v1/events`)
  const messages: Array<Record<string, unknown>> = []
  ws.on('message', (data) => { messages.push(JSON.parse(String(data)) as Record<string, unknown>) })
  return once(ws, 'open').then(() => ({ ws, messages }))
}

async function until (what: string, ok: () => boolean, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

function ledger (dirs: DaemonDirs): { runs: Array<Record<string, any>> } {
  return JSON.parse(readFileSync(join(dirs.stateDir, 'runs.json'), 'utf8'))
}

/** The history line Nextflow writes when a run ends (tab-separated; HistoryFile.groovy). */
function historyLine (sessionId: string, status: 'OK' | 'ERR'): string {
  return ['2026-11-25 12:00:00', '3.2s', 'tiny_curie', status, 'abcdef1234', sessionId, 'nextflow run hello'].join('\t') + '\n'
}

t.test('SIGTERM: clean stop; the run stays provisioned; the next start reconciles it', async (t) => {
  const dirs = daemonDirs(t)
  writeConfig(dirs, { runs: { defaultTargets: ['hpc'] } })
  const daemon = await spawnDaemon(t, dirs)
  t.equal((await call(dirs.socket, 'POST', '/api/v1/secrets', { name: 'TOKEN_A', value: 'sigterm-canary-value' })).status, 201)
  const armed = await call(dirs.socket, 'POST', '/api/v1/runs', { mode: 'arm', launchDir: dirs.launchDir, ttlSeconds: 3600 })
  t.equal(armed.status, 201)
  const { runId, sessionId } = armed.body as { runId: string, sessionId: string }
  const storeFile = join(dirs.runsRoot, 'root', runId, 'store.json')
  t.ok(existsSync(storeFile), 'the run got its store')
  const events = await openEvents(dirs.socket)
  const closed = once(events.ws, 'close')

  const exit = await daemon.stop('SIGTERM')
  t.same(exit, { code: 0, signal: null }, 'exit 0 on SIGTERM')
  const [closeCode] = await closed
  t.not(closeCode, 1006, 'the WebSocket was closed by the daemon with a close frame, not cut')
  t.equal(existsSync(dirs.socket), false, 'the socket is removed')
  t.ok(daemon.logs.some(l => l.reason === 'SIGTERM'), 'the stop is logged with its reason')
  t.equal(daemon.stderr().includes('NodeVersionSupportWarning'), false, "the AWS SDK's Node version warning is filtered")

  // The ledger is whole and the run is left as it was: stopping the daemon ends no run.
  const run = ledger(dirs).runs.find(r => r.runId === runId)
  t.equal(run?.state, 'armed')
  t.equal(run?.targets.hpc.state, 'provisioned')
  t.ok(existsSync(storeFile), 'the secrets stay in place while the daemon is down')

  // While the daemon is down, Nextflow starts and finishes: its history line turns OK.
  mkdirSync(join(dirs.launchDir, '.nextflow'))
  writeFileSync(join(dirs.launchDir, '.nextflow', 'history'), historyLine(sessionId, 'OK'))

  const again = await spawnDaemon(t, dirs)
  // Reconciliation runs before the daemon serves: by the time it answers, the run has ended and been revoked.
  const after = ledger(dirs).runs.find(r => r.runId === runId)
  t.equal(after?.state, 'completed', 'the restart saw the run end')
  t.equal(after?.targets.hpc.state, 'revoked')
  t.equal(existsSync(join(dirs.runsRoot, 'root', runId)), false, 'the run dir is gone')
  const shown = await call(dirs.socket, 'GET', `/api/v1/runs/${runId}`)
  t.equal(shown.body.state, 'completed')
  t.equal((await again.stop('SIGINT')).code, 0, 'SIGINT stops it cleanly too')
})

/**
 * One request on the keep-alive agent, then: was it logged (a line with a reqId)? Lines arrive asynchronously, so
 * a line that is expected is waited for, and one that is not gets a second to show up anyway.
 */
async function logLevelCheck (dirs: DaemonDirs, daemon: SpawnedDaemon, agent: Agent, expectLogged: boolean): Promise<{ logged: boolean, reused: boolean }> {
  const before = daemon.logs.length
  const res = await call(dirs.socket, 'GET', '/api/v1/health', undefined, agent)
  const isReq = (l: LogLine, i: number): boolean => i >= before && typeof l.reqId === 'string'
  if (expectLogged) {
    const seen = await daemon.waitForLog(l => isReq(l, daemon.logs.indexOf(l)), 15_000).then(() => true, () => false)
    return { logged: seen, reused: res.reusedSocket }
  }
  await new Promise(resolve => setTimeout(resolve, 1000))
  return { logged: daemon.logs.some(isReq), reused: res.reusedSocket }
}

t.test('SIGHUP: reloads the log level without dropping connections; a broken config is refused', async (t) => {
  const dirs = daemonDirs(t)
  writeConfig(dirs, { logLevel: 'info' })
  const daemon = await spawnDaemon(t, dirs)
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const events = await openEvents(dirs.socket)
  t.teardown(() => events.ws.terminate())

  const first = await logLevelCheck(dirs, daemon, agent, true)
  t.equal(first.logged, true, 'at info, every API call is logged with its request id')

  writeConfig(dirs, { logLevel: 'warn' })
  daemon.child.kill('SIGHUP')
  // At warn the "config reloaded" line itself is below the level: wait for requests to stop being logged instead.
  let second = await logLevelCheck(dirs, daemon, agent, false)
  for (let i = 0; i < 30 && second.logged; i++) second = await logLevelCheck(dirs, daemon, agent, false)
  t.equal(second.logged, false, 'at warn, API calls are no longer logged')
  t.equal(second.reused, true, 'the keep-alive connection made before the reload still serves')
  t.equal(events.ws.readyState, WebSocket.OPEN, 'the WebSocket stays open')
  t.equal((await call(dirs.socket, 'POST', '/api/v1/secrets', { name: 'AFTER_RELOAD', value: 'hup-canary-value' }, agent)).status, 201)
  await until('the event on the old WebSocket', () => events.messages.some(m => m.type === 'secret.created'))
  t.ok(events.messages.some(m => m.type === 'secret.created' && JSON.stringify(m).includes('AFTER_RELOAD')), 'events still flow on it')

  // A broken file: logged, the running config kept (still warn), the daemon still serves.
  writeFileSync(dirs.configFile, '{ "logLevel": "loud" }')
  daemon.child.kill('SIGHUP')
  const refused = await daemon.waitForLog(l => l.level === 50 && (l.err as { code?: string } | undefined)?.code === 'NFS_ERR_CONFIG')
  t.ok(refused, 'the refused reload is logged as an error with its code')
  const third = await logLevelCheck(dirs, daemon, agent, false)
  t.equal(third.logged, false, 'the level is still warn')
  t.equal(third.reused, true)

  // Back to info: the daemon logs requests again, so the level really follows the file.
  writeConfig(dirs, { logLevel: 'info' })
  daemon.child.kill('SIGHUP')
  await daemon.waitForLog(l => l.logLevel === 'info' && l.room === 'main')
  t.equal((await logLevelCheck(dirs, daemon, agent, true)).logged, true, 'at info again, requests are logged')
  t.equal(daemon.child.exitCode, null, 'three reloads, no exit')
  t.equal((await daemon.stop('SIGTERM')).code, 0)
})
