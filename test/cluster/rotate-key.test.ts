// rotate-key in cluster mode is refused before anything is touched: the secrets are in etcd, so re-encrypting this
// node's store.json would leave the cluster under the old key while the node loads the new one (it then could not
// start). Without the refusal the command rotated the local files and reported success.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { errorCode, runDaemon } from '../helpers/cli.js'
import { tempDir } from '../helpers/daemon.js'

t.test('rotate-key with a cluster section exits 78 and leaves the key and the state dir alone', async t => {
  const dir = tempDir(t)
  const keyFile = join(dir, 'master.key')
  const newKey = join(dir, 'new.key')
  const key = `${randomBytes(32).toString('base64')}\n`
  writeFileSync(keyFile, key, { mode: 0o600 })
  writeFileSync(newKey, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  const config = join(dir, 'config.json')
  writeFileSync(config, JSON.stringify({ keyFile, hpc: { runsRoot: join(dir, 'runs') }, cluster: { nodeName: 'n1', etcd: { endpoints: ['http://127.0.0.1:1'] } } }), { mode: 0o600 })
  const r = await runDaemon(['rotate-key', '--mode', 'system', '--config', config, '--state-dir', join(dir, 'state'), '--socket', join(dir, 'sock'), '--new-key-file', newKey])
  t.equal(r.code, 78, r.stderr)
  t.equal(errorCode(r.stderr), 'NFS_ERR_CONFIG')
  t.equal(readFileSync(keyFile, 'utf8'), key, 'the key file is unchanged')
  t.notOk(existsSync(join(dir, 'state', 'store.json')), 'no store written')
})
