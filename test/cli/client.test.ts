import t from 'tap'
import { createServer } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { apiPath, discoverSocket, errorFromBody, openClient, wsUrl } from '../../daemon/cli/client.js'
import { runCli } from '../../daemon/cli/main.js'
import { SYSTEM_SOCKET } from '../../daemon/config.js'
import { captureIo as io } from '../helpers/cli-io.js'

function tmp (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-client-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('socket discovery: flag, env, user socket if present, system socket', async t => {
  const env = { NF_SECRETS_SOCKET: '/env.sock', XDG_RUNTIME_DIR: '/run/user/1001' }
  const user = '/run/user/1001/nf-secretsd/api.sock'
  t.same(discoverSocket('/flag.sock', env, '/home/a', () => true), { path: '/flag.sock', from: 'flag' })
  t.same(discoverSocket(undefined, env, '/home/a', () => true), { path: '/env.sock', from: 'env' })
  t.same(discoverSocket(undefined, { XDG_RUNTIME_DIR: '/run/user/1001' }, '/home/a', p => p === user), { path: user, from: 'user' })
  t.same(discoverSocket(undefined, {}, '/home/a', p => p === '/home/a/.nf-secretsd/api.sock'), { path: '/home/a/.nf-secretsd/api.sock', from: 'user' })
  t.same(discoverSocket(undefined, { XDG_RUNTIME_DIR: '/run/user/1001' }, '/home/a', () => false), { path: SYSTEM_SOCKET, from: 'system' })
})

t.test('paths, queries, WebSocket URLs and refused answers', async t => {
  t.equal(apiPath('/secrets', { workspace: 'lab', other: undefined }), '/api/v1/secrets?workspace=lab')
  t.equal(apiPath('/secrets/resolve'), '/api/v1/secrets/resolve')
  t.equal(wsUrl('/run/x/api.sock', '/events'), 'ws+unix:///run/x/api.sock:/api/v1/events')
  const e = errorFromBody(404, JSON.stringify({ statusCode: 404, code: 'NFS_ERR_SECRET_NOT_FOUND', error: 'Not Found', message: 'Secret X not found' }))
  t.equal(e.code, 'NFS_ERR_SECRET_NOT_FOUND')
  t.equal(errorFromBody(502, '<html>bad gateway</html>').code, 'NFS_ERR_INTERNAL')
})

t.test('no daemon: NFS_ERR_UNAVAILABLE and exit 69, in the documented stderr format', async t => {
  const dir = tmp(t)
  const client = openClient(join(dir, 'none.sock'))
  await t.rejects(client.request('GET', '/health'), { code: 'NFS_ERR_UNAVAILABLE' })
  await client.close()
  const c = io()
  t.equal(await runCli(['--socket', join(dir, 'none.sock'), 'status'], c.io), 69)
  t.match(c.err(), /^nf-secrets: .* \(NFS_ERR_UNAVAILABLE\)\n$/)
  t.equal(c.out(), '')
})

t.test('requests and coded errors over a real Unix socket', async t => {
  const dir = tmp(t)
  const socket = join(dir, 'api.sock')
  const seen: Array<{ method?: string, url?: string, body: string, type?: string }> = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => { body += c.toString() })
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, body, type: req.headers['content-type'] })
      res.setHeader('content-type', 'application/json')
      if (req.url?.startsWith('/api/v1/secrets/NOPE') === true) {
        res.statusCode = 404
        res.end(JSON.stringify({ statusCode: 404, code: 'NFS_ERR_SECRET_NOT_FOUND', error: 'Not Found', message: 'Secret user:u/NOPE not found' }))
      } else if (req.method === 'POST') {
        res.statusCode = 201
        res.end(JSON.stringify({ name: 'OK_NAME', scope: 'user:u', version: 1 }))
      } else {
        res.end(JSON.stringify({ deleted: 'OK_NAME', scope: 'workspace:lab' }))
      }
    })
  })
  await new Promise<void>(resolve => server.listen(socket, resolve))
  t.teardown(() => new Promise<void>(resolve => server.close(() => resolve())))
  const ok = io({ NF_SECRETS_SOCKET: socket })
  t.equal(await runCli(['secrets', 'delete', 'OK_NAME', '-w', 'lab', '--json'], ok.io), 0)
  t.same(JSON.parse(ok.out()), { deleted: 'OK_NAME', scope: 'workspace:lab' })
  t.same(seen.at(-1), { method: 'DELETE', url: '/api/v1/secrets/OK_NAME?workspace=lab', body: '', type: undefined })
  const missing = io({ NF_SECRETS_SOCKET: socket })
  t.equal(await runCli(['secrets', 'delete', 'NOPE'], missing.io), 3)
  t.match(missing.err(), /\(NFS_ERR_SECRET_NOT_FOUND\)\n$/)
  const add = io({ NF_SECRETS_SOCKET: socket })
  ;(add.io.stdin as unknown as PassThrough).end('v4lue\n')
  t.equal(await runCli(['secrets', 'add', 'OK_NAME'], add.io), 0)
  t.equal(add.out(), 'Added OK_NAME in user:u (version 1).\n')
  t.same(JSON.parse(seen.at(-1)!.body), { name: 'OK_NAME', value: 'v4lue' }, 'the value travels in the body, newline stripped')
  t.equal(seen.at(-1)!.type, 'application/json')
})
