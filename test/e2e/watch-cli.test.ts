// nf-secrets watch add|list|remove against a real nf-secretsd in system mode over its socket: alice may watch her
// own dir, not bob's (exit 4); a Nextflow start in her watched dir is seen (status counts the launch dir); the watch
// survives a daemon restart and is removed again.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { chownSync, chmodSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { socketGet, startTestDaemon, tempDir } from '../helpers/daemon.js'
import { errorCode, json, runCli } from '../helpers/cli.js'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import { requireUsers } from '../helpers/requires.js'
import { waitFor } from '../helpers/watch.js'

const [alice, bob] = requireUsers(t, ['alice', 'bob'])

t.test('watch add/list/remove through the CLI, ownership enforced, persisted across a restart', async t => {
  const dir = tempDir(t, 'nfs-e2e-watch-')
  const mine = join(dir, 'alice-data')
  const theirs = join(dir, 'bob-data')
  mkdirSync(join(mine, 'proj'), { recursive: true })
  mkdirSync(theirs)
  chownSync(mine, alice!.uid, alice!.gid)
  chownSync(join(mine, 'proj'), alice!.uid, alice!.gid)
  chownSync(theirs, bob!.uid, bob!.gid)
  chmodSync(mine, 0o755)
  const keyFile = join(dir, 'master.key')
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  let daemon = await startTestDaemon(t, { mode: 'system', dir, config: { keyFile } })
  const cli = (args: string[]): ReturnType<typeof runCli> => runCli(['--socket', daemon.socket, ...args], { user: 'alice' })

  const refused = await cli(['watch', 'add', theirs])
  t.equal(refused.code, 4, 'a dir alice does not own')
  t.equal(errorCode(refused.stderr), 'NFS_ERR_FORBIDDEN')
  const added = await cli(['--json', 'watch', 'add', mine, '--poll', '--interval', '1000', '--depth', '2'])
  t.equal(added.code, 0, added.stderr)
  t.match(json(added.stdout), { root: mine, poll: true, intervalMs: 1000, depth: 2, owner: 'alice', source: 'api' })

  const nf = await startFakeNextflow({ launchDir: join(mine, 'proj'), uid: alice!.uid, gid: alice!.gid })
  t.teardown(() => nf.close())
  await waitFor('the launch dir is found', async () => {
    const list = json<Array<{ root: string, launchDirs: number }>>((await cli(['--json', 'watch', 'list'])).stdout)
    return list.some(w => w.root === mine && w.launchDirs === 1)
  }, 15_000, 200)
  await nf.finish('OK')
  const status = json<{ watches: { roots: number, launchDirs: number } }>((await socketGet(daemon.socket, '/api/v1/status')).body)
  t.match(status.watches, { roots: 1, launchDirs: 1 })

  await daemon.stop()
  daemon = await startTestDaemon(t, { mode: 'system', dir, config: { keyFile } })
  const listed = await cli(['watch', 'list'])
  t.equal(listed.code, 0)
  t.match(listed.stdout, mine, 'the watch is back after a restart')
  const removed = await cli(['watch', 'remove', mine])
  t.equal(removed.code, 0, removed.stderr)
  const again = await cli(['watch', 'remove', mine])
  t.equal(again.code, 3)
  t.equal(errorCode(again.stderr), 'NFS_ERR_WATCH_NOT_FOUND')
})
