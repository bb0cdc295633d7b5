// The store's value checker started ahead of the read (store/verify-aside.ts prestartVerifier, issue 18): it runs the
// built worker, so it is tested on dist/ in a plain node. A worker started for a store that then turns out small,
// broken or missing is cancelled, and one nobody ever hands a text must not keep the daemon's process alive.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureBuilt, ROOT } from '../helpers/daemon.js'

ensureBuilt()
const aside = join(ROOT, 'dist', 'daemon', 'store', 'verify-aside.js')
const crypto = join(ROOT, 'dist', 'daemon', 'store', 'crypto.js')
const SecretValue = join(ROOT, 'dist', 'daemon', 'secret-value.js')

// From a file: `node -e` exits with a worker still waiting, a script file (as the daemon's main.js) does not.
function node (script: string): { status: number | null, stdout: string, stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-verify-aside-'))
  try {
    writeFileSync(join(dir, 'script.mjs'), script)
    const r = spawnSync(process.execPath, [join(dir, 'script.mjs')], { encoding: 'utf8', timeout: 15_000, env: { PATH: process.env.PATH } })
    return { status: r.status, stdout: r.stdout, stderr: r.stderr }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

t.test('a prestarted worker nobody uses does not keep the process alive', async t => {
  // The timer lets the worker come up (and wait for its text) before the script has nothing left to do.
  const r = node(`const m = await import(${JSON.stringify(aside)}); const v = m.prestartVerifier(); console.log(v === null ? 'none' : 'started'); setTimeout(() => {}, 300)`)
  t.equal(r.status, 0, `exited by itself (null: killed after 15 s) ${r.stderr}`)
  t.equal(r.stdout.trim(), 'started')
})

t.test('a prestarted worker verifies a big store, and names the one value that fails', async t => {
  const script = `
    const { prestartVerifier, verifyAside } = await import(${JSON.stringify(aside)})
    const { seal, keyId } = await import(${JSON.stringify(crypto)})
    const { SecretValue } = await import(${JSON.stringify(SecretValue)})
    const { randomBytes } = await import('node:crypto')
    const key = randomBytes(32)
    const at = '2026-12-02T17:00:00.000Z'
    const secrets = Array.from({ length: 600 }, (_, i) => {
      const name = 'S' + String(i).padStart(4, '0')
      return { name, scope: 'user:alice', createdAt: at, createdBy: 'alice', updatedAt: at, updatedBy: 'alice', lastUsed: null, version: 1, sealed: seal(key, 'user:alice', name, new SecretValue('v' + i)) }
    })
    const good = { format: 1, keyId: keyId(key), secrets, workspaces: [] }
    const early = prestartVerifier()
    let answered = false
    early.worker.on('message', () => { answered = true })
    await verifyAside(good, JSON.stringify(good), key, 'store.json', early)
    console.log('good ok', answered ? 'by the worker' : 'not by the worker')
    const moved = structuredClone(good)
    moved.secrets[417].sealed = moved.secrets[3].sealed
    try {
      await verifyAside(moved, JSON.stringify(moved), key, 'store.json', prestartVerifier())
      console.log('bad accepted')
    } catch (err) {
      console.log(err.code, err.message.includes('S0417'))
    }`
  const r = node(script)
  t.equal(r.status, 0, r.stderr)
  t.same(r.stdout.trim().split('\n'), ['good ok by the worker', 'NFS_ERR_STORE_UNREADABLE true'])
})
