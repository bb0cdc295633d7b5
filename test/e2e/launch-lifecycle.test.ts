// The end of launched runs against a real nf-secretsd (user mode): `runs revoke` stops the command (SIGTERM, then
// SIGKILL after the grace period) before revoking; a daemon restart (SIGTERM and SIGKILL) in the middle of a run
// leaves it going, and the next daemon adopts it, ends it with its recorded status and revokes it.
import t from 'tap'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startTestDaemon, tempDir } from '../helpers/daemon.js'
import { alive, api, attachRun, eventually, launch, run } from '../helpers/attach.js'
import type { RunView } from '../../daemon/runs/service.js'
import { ME } from '../helpers/users.js'

// Each subtest starts real daemons (and restarts them): more than tap's default file timeout on a loaded machine.
t.setTimeout(300_000)

t.test('runs revoke stops the command: SIGTERM, then SIGKILL after the grace period, then revokes', async t => {
  const daemon = await startTestDaemon(t, { mode: 'user', config: { launch: { killGraceSeconds: 1 } } })
  const dir = tempDir(t)
  const polite = await launch(daemon, dir, ['sleep', '600'])
  const pPid = (await run(daemon, polite)).pid!
  t.ok(alive(pPid))
  const a = await attachRun(t, daemon.socket, polite)
  const revoked = await api<RunView>(daemon.socket, 'DELETE', `/runs/${polite}`)
  t.equal(revoked.status, 200)
  t.equal(revoked.body.state, 'killed')
  t.equal(revoked.body.targets.hpc?.state, 'revoked')
  t.notOk(alive(pPid), 'the command is gone before the revoke returns')
  t.match((await a.closed).exit, { state: 'killed', signal: 'SIGTERM' })
  t.notOk(existsSync(join(daemon.dir, 'runs', ME, polite)))

  const marker = join(dir, 'marker')
  const stubborn = await launch(daemon, dir, ['sh', '-c', `trap 'echo term >> ${marker}' TERM; echo ready; while :; do sleep 0.1; done`])
  const b = await attachRun(t, daemon.socket, stubborn)
  await b.waitFor(/ready/)
  const sPid = (await run(daemon, stubborn)).pid!
  const r2 = await api<RunView>(daemon.socket, 'DELETE', `/runs/${stubborn}`)
  t.equal(r2.body.state, 'killed')
  t.equal(r2.body.targets.hpc?.state, 'revoked')
  t.match(readFileSync(marker, 'utf8'), /term/, 'SIGTERM came first')
  t.notOk(alive(sPid), 'SIGKILL ended what ignored SIGTERM')
  t.match((await b.closed).exit, { state: 'killed', signal: 'SIGKILL' })
})

for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
  t.test(`a daemon restart (${signal}) in the middle of a launched run: it goes on, is adopted, ends with its status, is revoked`, async t => {
    const dir = tempDir(t)
    const daemon = await startTestDaemon(t, { mode: 'user', dir })
    const work = join(dir, 'work')
    mkdirSync(work)
    const go = join(work, 'go')
    const runId = await launch(daemon, work, ['sh', '-c', `echo before-restart; while [ ! -f ${go} ]; do sleep 0.1; done; echo after-restart; exit 7`])
    const a = await attachRun(t, daemon.socket, runId)
    await a.waitFor(/before-restart/)
    const pid = (await run(daemon, runId)).pid!
    if (signal === 'SIGKILL') {
      daemon.process.kill('SIGKILL')
      await new Promise(resolve => daemon.process.once('exit', resolve))
    } else {
      t.equal(await daemon.stop(), 0)
    }
    t.not((await a.closed).exit?.type, 'exit', 'the client lost the daemon, not the run')
    t.ok(alive(pid), 'the launched command outlived the daemon')

    const next = await startTestDaemon(t, { mode: 'user', dir })
    t.equal((await run(next, runId)).state, 'running', 'adopted')
    const b = await attachRun(t, next.socket, runId)
    await b.waitFor(/before-restart/)
    // Its exit status 7, set by its last line only after `go` exists, proves it survived the daemon and the hangup of
    // its terminal (killed by either, it would end by a signal): no sleep-and-look is needed for that.
    writeFileSync(go, '')
    const ended = await b.closed
    t.same(ended.exit, { type: 'exit', state: 'failed', exitCode: 7, signal: null }, 'ended with the status the wrapper recorded')
    const view = await eventually(async () => { const v = await run(next, runId); return v.targets.hpc?.state === 'revoked' ? v : undefined }, 'revoked')
    t.match(view, { state: 'failed', exitCode: 7 })
    t.notOk(existsSync(join(dir, 'runs', ME, runId)), 'run dir gone')
    t.notOk(alive(pid))
  })
}
