// Each api/ plugin is registered with exactly what it uses (STYLE: its options, not a bag). A plugin whose service
// this daemon does not run is not registered: its routes are absent (404 NFS_ERR_NOT_FOUND), not answered with a
// target's error code (the old guard answered GET /watches with NFS_ERR_TARGET_UNAVAILABLE, as if watching were a
// target); so is GET /runs/:id/attach without a PTY host.
import t from 'tap'
import { appFixture } from '../helpers/app.js'

t.test('a server built without a watch service has no /watches routes', async t => {
  const { app, as } = await appFixture(t)
  for (const [method, url] of [['GET', '/api/v1/watches'], ['POST', '/api/v1/watches'], ['DELETE', '/api/v1/watches?root=/tmp']] as const) {
    const res = await app.inject({ method, url, headers: as('alice'), ...(method === 'POST' ? { payload: { root: '/tmp' } } : {}) })
    t.equal(res.statusCode, 404, `${method} ${url}`)
    t.equal(res.json().code, 'NFS_ERR_NOT_FOUND', `${method} ${url}`)
  }
})

t.test('a server built without a PTY host has no attach route', async t => {
  const { app, as } = await appFixture(t)
  const res = await app.inject({ method: 'GET', url: '/api/v1/runs/r1/attach', headers: as('alice') })
  t.equal(res.statusCode, 404)
  t.equal(res.json().code, 'NFS_ERR_NOT_FOUND')
})

t.test('a server built without a run lifecycle has no /runs routes; status still answers, with no runs', async t => {
  const { app, as } = await appFixture(t, {}, { lifecycle: false })
  for (const [method, url] of [['GET', '/api/v1/runs'], ['POST', '/api/v1/runs'], ['GET', '/api/v1/runs/r1'], ['DELETE', '/api/v1/runs/r1']] as const) {
    const res = await app.inject({ method, url, headers: as('alice'), ...(method === 'POST' ? { payload: { launchDir: '/tmp', mode: 'arm' } } : {}) })
    t.equal(res.statusCode, 404, `${method} ${url}`)
    t.equal(res.json().code, 'NFS_ERR_NOT_FOUND', `${method} ${url}`)
  }
  const status = await app.inject({ method: 'GET', url: '/api/v1/status', headers: as('alice') })
  t.equal(status.statusCode, 200)
  t.same(status.json().runs, {})
  t.same(status.json().targets, {})
})

t.test('no plugin is handed the whole bag: the server has no deps decorator', async t => {
  const { app } = await appFixture(t)
  t.equal(app.hasDecorator('deps'), false)
})
