// A system daemon's socket is at its path only with its final mode (0666; callers are told apart by uid). It used to
// be bound at 0600 and opened up after listen: for that moment other users were refused, and a clean CI run saw 0600
// after root's /health had answered (bad-store.test.ts "socket modes"). Here a watcher in another process lstat()s
// the path in a tight loop while the daemon starts, five times over, and every mode it saw must be 0666. (On the old
// order this is a race the watcher wins only sometimes; bad-store's check after /health is the other half.)
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { daemonPaths, startTestDaemon, tempDir } from '../helpers/daemon.js'

const WATCHER = `
const { lstatSync } = require('node:fs')
const path = process.argv[1]
const seen = new Set()
const until = Date.now() + Number(process.argv[2])
let stop = false
process.on('SIGTERM', () => { stop = true })
;(function spin () {
  for (let i = 0; i < 2000; i++) {
    try { seen.add(lstatSync(path).mode & 0o777) } catch {}
  }
  if (!stop && Date.now() < until) setImmediate(spin)
  else { process.stdout.write(JSON.stringify([...seen])); process.exit(0) }
})()
`

t.test('the system socket is never seen at its path with another mode than 0666', async t => {
  for (let round = 0; round < 5; round++) {
    const dir = tempDir(t)
    const keyFile = join(dir, 'master.key')
    writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
    const socket = daemonPaths(dir).socket
    const watcher = spawn(process.execPath, ['-e', WATCHER, socket, '30000'], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    watcher.stdout.on('data', (c: Buffer) => { out += c.toString() })
    const exited = new Promise<void>(resolve => watcher.once('exit', () => { resolve() }))
    const d = await startTestDaemon(t, { mode: 'system', dir, config: { keyFile } })
    watcher.kill('SIGTERM')
    await exited
    const modes = JSON.parse(out) as number[]
    t.same(modes.map(m => m.toString(8)), ['666'], `round ${round}: every mode seen at the path`)
    await d.stop()
  }
})

t.test('a temporary socket left by a start killed between bind and link is removed by the next start', async t => {
  const dir = tempDir(t)
  const socket = daemonPaths(dir).socket
  mkdirSync(dirname(socket), { recursive: true, mode: 0o700 })
  const stale = join(dirname(socket), `.${basename(socket)}.99999.new`)
  // A socket file with nobody behind it, as a SIGKILLed start leaves it.
  const made = spawnSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', stale])
  t.equal(made.status, 0, 'the stale socket is made')
  t.ok(existsSync(stale))
  await startTestDaemon(t, { mode: 'user', dir })
  t.notOk(existsSync(stale), 'gone after the next start')
})
