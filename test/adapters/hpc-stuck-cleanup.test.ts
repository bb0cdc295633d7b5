// The hpc target as root, revoking a run dir its owner filled with a tree (so cleanup runs `find` as the owner) while
// the owner stops every `find` of theirs: the revoke fails at the cleanup deadline with every child of it killed, the
// run dir still there for the next attempt, and the next attempt (the revoker's retry, once the owner stops
// interfering) removes it. Without a deadline the revoke never settles.
import t from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { createHpcTarget } from '../../adapters/hpc.js'
import type { TargetRun } from '../../adapters/types.js'
import { SecretValue } from '../../daemon/secret-value.js'
import { requireUsers } from '../helpers/requires.js'

const [bob] = requireUsers(t, ['bob'])
const RUN_ID = 'Rstuck00000001'

/** bob's live `find`s working under `top`: other tests running beside this one may run finds as bob too. */
function bobFinds (top: string): number[] {
  const pids: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const status = readFileSync(`/proc/${name}/status`, 'utf8')
      if (!/^Name:\s+find$/m.test(status) || !new RegExp(`^Uid:\\s+${bob!.uid}\\s`, 'm').test(status) || /^State:\s+Z/m.test(status)) continue
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(top)) pids.push(Number(name))
    } catch {}
  }
  return pids
}

t.test('a cleanup its owner stopped fails at the deadline, leaves no child, and the retry finishes it', async t => {
  const top = mkdtempSync('/tmp/nfs-hpc-stuck-')
  chmodSync(top, 0o755)
  t.teardown(() => rmSync(top, { recursive: true, force: true }))
  const target = createHpcTarget({ runsRoot: join(top, 'runs'), privileged: true, logger: pino({ level: 'silent' }), cleanupDeadlineMs: 300 })
  t.teardown(() => target.close())
  const run: TargetRun = { runId: RUN_ID, sessionId: '0b7e9a52-1111-4222-8333-444455556666', user: 'bob', uid: bob!.uid, gid: bob!.gid, workspace: 'personal', launchDir: '/tmp', host: 'h', names: ['TOKEN'] }
  const placed = await target.provision(run, new Map([['TOKEN', new SecretValue('stuck-cleanup-value')]]))
  const runDir = join(top, 'runs', 'bob', RUN_ID)
  t.ok(existsSync(placed.env?.NXF_SECRETS_FILE ?? join(runDir, 'store.json')))
  execFileSync('runuser', ['-u', 'bob', '--', 'sh', '-c', `cd "${runDir}" && mkdir sub && cd sub && for d in $(seq 1 10); do mkdir d$d; (cd d$d && seq -f f%g 1 500 | xargs touch); done`])

  const stopper = spawn('runuser', ['-u', 'bob', '--', 'sh', '-c', 'while :; do pkill -STOP -u bob -x find; done'], { stdio: 'ignore', detached: true })
  const stopStopper = (): void => { try { process.kill(-stopper.pid!, 'SIGKILL') } catch {} }
  t.teardown(stopStopper)
  await t.rejects(target.revoke(run), 'the revoke fails at the deadline instead of hanging')
  t.ok(existsSync(runDir), 'the run dir is left for the retry')
  stopStopper()
  for (let i = 0; i < 100 && bobFinds(top).length > 0; i++) await new Promise(resolve => setTimeout(resolve, 20))
  t.same(bobFinds(top), [], 'every find of the timed-out cleanup is gone (SIGKILL reaches a stopped process)')

  // The retry, with the default deadline (5,000 files take a while on a loaded machine).
  const retry = createHpcTarget({ runsRoot: join(top, 'runs'), privileged: true, logger: pino({ level: 'silent' }) })
  t.teardown(() => retry.close())
  await retry.revoke(run)
  t.notOk(existsSync(runDir), 'the retry removed the run dir')
})
