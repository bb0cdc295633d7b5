// Socket activation as systemd does it (nf-secretsd.socket): the test binds and listens on the Unix socket itself,
// hands it to the daemon as fd 3 with LISTEN_FDS=1 and LISTEN_PID=<the daemon's pid>, and talks to the daemon
// through it. The daemon must serve on that socket, make none of its own, and leave it to its owner at stop.
import t from 'tap'
import { chmodSync, existsSync, linkSync, lstatSync, mkdirSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { once } from 'node:events'
import { call, startTestDaemon, tempDir } from '../helpers/daemon.js'

t.setTimeout(240_000)

/**
 * A listening socket at `<dir>/sd/api.sock`, as systemd makes it. Closing a listening Unix socket in Node unlinks
 * its path, and this process must close its copy (or it would accept some of the connections itself): so it binds
 * at a private name and gives the socket a second name, a hard link, which outlives that unlink.
 */
async function activationSocket (dir: string): Promise<{ path: string, fd: number, close: () => Promise<void> }> {
  const sd = join(dir, 'sd')
  mkdirSync(sd, { mode: 0o755 })
  const bindPath = join(sd, 'bind.sock')
  const path = join(sd, 'api.sock')
  const server = createServer()
  server.listen(bindPath)
  await once(server, 'listening')
  linkSync(bindPath, path)
  chmodSync(path, 0o666) // SocketMode=0666 in the unit
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd
  return { path, fd, close: () => new Promise<void>(resolve => server.close(() => resolve())) }
}

t.test('the daemon serves on the socket it is handed as fd 3 and makes none of its own', async (t) => {
  const dir = tempDir(t)
  const sock = await activationSocket(dir)
  const daemon = await startTestDaemon(t, { mode: 'user', dir, listenFd: sock.fd, healthSocket: sock.path, afterSpawn: sock.close })

  const listening = await daemon.waitForLog(l => l.fd !== undefined)
  t.equal(listening.fd, 3, 'the daemon says it listens on fd 3')
  t.equal(existsSync(daemon.socket), false, 'no socket of its own at the configured path')

  // Identity through SO_PEERCRED works on a handed-over socket too.
  const who = await call(sock.path, 'GET', '/api/v1/whoami')
  t.equal(who.status, 200)
  t.equal(who.body.uid, process.getuid!())

  const created = await call(sock.path, 'POST', '/api/v1/secrets', { name: 'ACTIVATION_CHECK', value: 'not-shown-anywhere' })
  t.equal(created.status, 201, 'a write goes through the handed-over socket')
  const list = await call(sock.path, 'GET', '/api/v1/secrets')
  t.ok(JSON.stringify(list.body).includes('ACTIVATION_CHECK'))
  const metrics = await call(sock.path, 'GET', '/metrics')
  t.equal(metrics.status, 200)
  t.match(metrics.text, /^nfsecretsd_runs\{state="running"\} 0$/m)

  // The daemon does not own the socket: at stop it closes its copy and leaves the file to systemd (RemoveOnStop=).
  t.equal(await daemon.stop('SIGTERM'), 0, 'a clean exit on SIGTERM')
  t.ok(lstatSync(sock.path).isSocket(), 'the activation socket file is left to its owner')
})

t.test('LISTEN_FDS meant for another process is ignored: the daemon makes its own socket', async (t) => {
  // LISTEN_PID names some other process (pid 1), as when a service manager's variables leak into a child.
  const daemon = await startTestDaemon(t, { mode: 'user', env: { LISTEN_FDS: '1', LISTEN_PID: '1' } })
  t.ok(lstatSync(daemon.socket).isSocket(), 'its own socket at the configured path')
  t.equal(lstatSync(daemon.socket).mode & 0o777, 0o600, 'user mode: 0600')
  t.equal(await daemon.stop('SIGTERM'), 0)
  t.equal(existsSync(daemon.socket), false, 'its own socket is removed at stop')
})
