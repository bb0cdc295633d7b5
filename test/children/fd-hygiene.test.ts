// Every kind of child the daemon starts gets fds 0, 1 and 2 only (plus what it is meant to have), even while the
// daemon holds pty masters: a live launched session (marked close-on-exec by the PtyHost) and, standing for any fd a
// library or the daemon's parent leaves without FD_CLOEXEC, a raw node-pty master opened here. The launch shell and
// the Slurm client are replaced by a script that records the fds it started with, then does the real work; the
// cleanup `find` is checked by test/e2e/stuck-cleanup.test.ts (a stopped find, inspected), every spawn going through
// runChild by test/children/one-runner.test.ts.
import t from 'tap'
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { spawn as ptySpawn } from '../../daemon/pty/node-pty.js'
import { PtyHost } from '../../daemon/pty/host.js'
import { querySlurmJobs } from '../../daemon/runs/liveness/slurm.js'
import { caller, runsFixture } from '../helpers/runs.js'
import { eventually } from '../helpers/attach.js'

/** A shell (or a Slurm client) that records "<name> <$3> <fd> <fd> ..." of its own start, then runs `then`. */
function recorder (dir: string, name: string, then: string): string {
  const path = join(dir, name)
  // Only builtins look at the fds (a command substitution or a redirection would add fds of the shell's own);
  // dash holds the script itself on fd 10+ ($0, skipped), and the glob's dir fd is closed once the list is made.
  writeFileSync(path, `#!/bin/sh
l=''
for f in /proc/$$/fd/*; do [ -e "$f" ] || continue; [ "$f" -ef "$0" ] && continue; l="$l \${f##*/}"; done
echo "${name} $3$l" > "${dir}/rec.$$"
${then}
`)
  chmodSync(path, 0o755)
  return path
}

function records (dir: string): Array<{ who: string, fds: number[] }> {
  return readdirSync(dir).filter(n => n.startsWith('rec.')).map(n => {
    const [who, stage, ...fds] = readFileSync(join(dir, n), 'utf8').trim().split(/\s+/)
    // a shell's $3 is its stage (the name after -c SCRIPT); squeue's is one of its own arguments
    return { who: who === 'shell' ? `shell ${stage!}` : who!, fds: fds.map(Number).sort((a, b) => a - b) }
  })
}

t.test('precheck, the launch wrapper, the command stage and a Slurm probe start with fds 0-2 only', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-fds-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const leaked = ptySpawn('/bin/sleep', ['60'], {})
  t.teardown(() => leaked.kill('SIGKILL'))

  const f = await runsFixture(t)
  const shell = recorder(dir, 'shell', 'exec /bin/sh "$@"')
  const host = new PtyHost({ runs: f.runs, config: f.config, logger: pino({ level: 'silent' }), probes: f.probes, daemonUid: process.getuid!(), clock: () => new Date(), shell, systemdRun: null })
  t.teardown(() => host.close())
  const me = caller('root', { uid: process.getuid!(), gid: process.getgid!() })
  const launch = { mode: 'launch' as const, launchDir: f.launchDir, command: ['sh', '-c', 'read _'], env: { PATH: '/usr/bin:/bin' } }
  const a = await host.launch(me, launch)
  const b = await host.launch(me, launch)
  t.teardown(async () => { await host.stop(a.runId); await host.stop(b.runId) })

  const squeue = recorder(dir, 'squeue', 'exit 0')
  t.ok(await querySlurmJobs(['123'], { squeue, deadlineMs: 10_000 }) !== null, 'Slurm was asked')

  // Each launch: precheck (nfs-check), the wrapper (nfs-launch), then, once the wrapper has closed what it must, the
  // command stage (nfs-run, which has the env file on fd 3 until it execs the command).
  const starts = await eventually(() => { const r = records(dir).filter(x => x.who !== 'shell nfs-run'); return r.length >= 5 ? r : undefined }, 'precheck, wrapper and squeue to record their fds')
  t.same(starts.map(r => r.who).sort(), ['shell nfs-check', 'shell nfs-check', 'shell nfs-launch', 'shell nfs-launch', 'squeue'].sort())
  for (const r of starts) t.same(r.fds, [0, 1, 2], r.who)
  const stages = await eventually(() => { const r = records(dir).filter(x => x.who === 'shell nfs-run'); return r.length >= 2 ? r : undefined }, 'both command stages')
  for (const r of stages) t.same(r.fds, [0, 1, 2, 3], r.who)
})
