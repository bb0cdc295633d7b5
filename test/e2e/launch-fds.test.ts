// Attack (security review 1, issue 13): the pty master of a live launched session must not reach any later child of
// the daemon. alice has a live session reading its terminal; bob launches a command that lists its fds and writes a
// command line into every fd above 2 (the review's attack typed `cat "$NXF_SECRETS_FILE" > /tmp/x` into alice's
// shell this way). bob must see exactly fds 0, 1 and 2, and alice's session must receive nothing from him: her own
// line, typed after bob is done, is the first her terminal delivers.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startTestDaemon, tempDir } from '../helpers/daemon.js'
import { runCli, spawnCli } from '../helpers/cli.js'
import { eventually } from '../helpers/attach.js'
import { requireUsers } from '../helpers/requires.js'

t.setTimeout(300_000)

const [alice, bob] = requireUsers(t, ['alice', 'bob'])

function workDir (root: string, user: { name: string, uid: number, gid: number }): string {
  const dir = join(root, `${user.name}-work`)
  mkdirSync(dir, { mode: 0o700 })
  chownSync(dir, user.uid, user.gid)
  return dir
}

// bob's command: a shell prints the fds it started with to its terminal (no redirection: dash keeps a copy of a
// redirected fd in fd 10), then bash writes a command line into each fd above 2 (a pty master among them would
// deliver it to that session as typed input). bash's own fd on its script, and the glob's closed dir fd, are skipped;
// only builtins look at the fds, since a command substitution would add a pipe of its own.
const LIST_THEN_STEAL = 'echo FDS-BEGIN; ls -1 /proc/$$/fd; echo FDS-END; exec bash ./steal.sh'
const STEAL = `#!/bin/bash
for f in /proc/$$/fd/*; do
  n=\${f##*/}
  [ "$n" -gt 2 ] 2>/dev/null && [ -e "$f" ] || continue
  [ "$f" -ef "$0" ] && continue
  readlink "$f" >> targets.txt
  printf 'echo INJECTED-BY-BOB\\n' >&"$n" 2>/dev/null
done
: > done
`

t.test("bob's launched command has fds 0-2 only and cannot type into alice's live session", async t => {
  const dir = tempDir(t)
  const keyFile = join(dir, 'master.key')
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  const daemon = await startTestDaemon(t, { mode: 'system', dir, config: { keyFile, launch: { killGraceSeconds: 2 } } })
  const env = { NF_SECRETS_SOCKET: daemon.socket }
  const aliceWork = workDir(dir, alice!)
  const bobWork = workDir(dir, bob!)

  // alice: a session that appends every line its terminal delivers to got.txt.
  const reader = 'echo ready > ready; while IFS= read -r line; do printf "%s\\n" "$line" >> got.txt; done'
  const launched = await runCli(['launch', '--detach', '--', 'sh', '-c', reader], { user: 'alice', env, cwd: aliceWork })
  t.equal(launched.code, 0, launched.stderr)
  const aliceRun = launched.stdout.trim()
  await eventually(() => existsSync(join(aliceWork, 'ready')) ? true : undefined, "alice's session is reading")

  writeFileSync(join(bobWork, 'steal.sh'), STEAL, { mode: 0o755 })
  chownSync(join(bobWork, 'steal.sh'), bob!.uid, bob!.gid)
  const stolen = await runCli(['launch', '--detach', '--', 'sh', '-c', LIST_THEN_STEAL], { user: 'bob', env, cwd: bobWork })
  t.equal(stolen.code, 0, stolen.stderr)
  await eventually(() => existsSync(join(bobWork, 'done')) ? true : undefined, "bob's command to finish")
  const output = readFileSync(join(daemon.stateDir, 'launch', 'bob', `${stolen.stdout.trim()}.log`), 'utf8')
  const listed = /FDS-BEGIN\s+([\d\s]*?)\s*FDS-END/.exec(output)
  t.ok(listed !== null, 'the listing is in the output log')
  const fds = (listed?.[1] ?? '').split(/\s+/).filter(Boolean).map(Number).sort((a, b) => a - b)
  t.same(fds, [0, 1, 2], 'bob starts with exactly stdin, stdout and stderr')
  const targets = join(bobWork, 'targets.txt')
  t.equal(existsSync(targets) ? readFileSync(targets, 'utf8') : '', '', 'no fd above 2 to write into')

  // alice types a line now; her terminal delivers in order, so anything of bob's would be in got.txt before it.
  const attach = spawnCli(t, ['attach', aliceRun], { user: 'alice', env })
  attach.child.stdin!.write('ALICE-OWN-LINE\n')
  const got = await eventually(() => {
    const p = join(aliceWork, 'got.txt')
    const text = existsSync(p) ? readFileSync(p, 'utf8') : ''
    return text.includes('ALICE-OWN-LINE') ? text : undefined
  }, "alice's own line")
  t.equal(got, 'ALICE-OWN-LINE\n', "alice's session received nothing from bob")
  await attach.stop()
  const revoke = await runCli(['runs', 'revoke', aliceRun], { user: 'alice', env })
  t.equal(revoke.code, 0, revoke.stderr)
})
