// GET /api/v1/policies and /policies/:name through the whole fastify instance (buildServer) with app.inject():
// the list, rendering with the daemon's aws.prefix and aws.region as defaults, and each refusal's code.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { buildServer } from '../../daemon/server.js'
import { defaults, type Config } from '../../daemon/config.js'
import { EventBus } from '../../daemon/events.js'
import { UserDirectory } from '../../daemon/identity/users.js'
import { openAuditLog } from '../../daemon/store/audit-log.js'
import { openSecretsStore } from '../../daemon/store/secrets-store.js'
import { renderParams } from '../../daemon/api/policies.js'
import { listPolicies } from '../../policies/render.js'
import { isAllowed, type PolicyDocument } from '../helpers/iam-eval.js'
import { caller } from '../helpers/runs.js'

type Teardown = { teardown: (fn: () => unknown) => void }

async function app (t: Teardown, aws: Partial<Config['aws']> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-policies-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const base = defaults('user', { uid: process.getuid!(), home: dir, env: {} })
  const config: Config = { ...base, stateDir: join(dir, 'state'), aws: { ...base.aws, ...aws }, mode: 'user', configFile: null }
  mkdirSync(config.stateDir, { mode: 0o700 })
  const logger = pino({ level: 'silent' })
  const store = await openSecretsStore({ path: join(config.stateDir, 'store.json'), key: randomBytes(32), logger })
  const audit = await openAuditLog(join(config.stateDir, 'audit.log'))
  const server = await buildServer({
    config,
    logger,
    store,
    audit,
    events: new EventBus(),
    users: new UserDirectory({ mode: 'user', adminGroup: config.adminGroup, daemonUid: process.getuid!() }),
    identify: () => caller(),
    clock: () => new Date(),
    version: 'test',
    startedAt: new Date()
  })
  t.teardown(async () => {
    await server.close()
    await store.close()
    await audit.close()
  })
  return server
}

const ACCOUNT = '111122223333'

t.test('GET /policies lists the three templates', async t => {
  const server = await app(t)
  const res = await server.inject({ method: 'GET', url: '/api/v1/policies' })
  t.equal(res.statusCode, 200)
  const rows = res.json() as Array<{ name: string, description: string }>
  t.same(rows.map(r => r.name).sort(), ['execution-role', 'instance-role', 'launcher'])
  t.same(rows, listPolicies())
})

t.test('GET /policies/:name renders with the daemon prefix and region as defaults', async t => {
  const server = await app(t, { prefix: 'tower-', region: 'eu-central-1' })
  const res = await server.inject({ method: 'GET', url: `/api/v1/policies/launcher?account=${ACCOUNT}` })
  t.equal(res.statusCode, 200, res.body)
  const doc = res.json() as PolicyDocument
  t.notMatch(res.body, /\$\{/, 'every placeholder filled')
  const arn = `arn:aws:secretsmanager:eu-central-1:${ACCOUNT}:secret:tower-abc123/TOKEN-Ab12Cd`
  t.ok(isAllowed(doc, 'secretsmanager:CreateSecret', arn), 'the daemon prefix and region are in the resource')
  t.notOk(isAllowed(doc, 'secretsmanager:CreateSecret', arn.replace('tower-', 'nf-secrets/')), 'not the default prefix')
  t.notOk(JSON.stringify(doc).includes('kms:'), 'no KMS statement without a key')

  const given = await server.inject({
    method: 'GET',
    url: `/api/v1/policies/instance-role?account=${ACCOUNT}&region=us-west-2&prefix=team-a/&executionRole=nf-exec`
  })
  t.equal(given.statusCode, 200, given.body)
  const inst = given.json() as PolicyDocument
  t.ok(isAllowed(inst, 'secretsmanager:GetSecretValue', `arn:aws:secretsmanager:us-west-2:${ACCOUNT}:secret:team-a/r1/X-Ab12Cd`), 'query wins over config')
  t.ok(isAllowed(inst, 'iam:PassRole', `arn:aws:iam::${ACCOUNT}:role/nf-exec`))

  const kms = `arn:aws:kms:us-west-2:${ACCOUNT}:key/0b5c4f2e-1111-2222-3333-444455556666`
  const withKey = await server.inject({ method: 'GET', url: `/api/v1/policies/execution-role?account=${ACCOUNT}&kmsKey=${encodeURIComponent(kms)}` })
  t.equal(withKey.statusCode, 200, withKey.body)
  t.ok(JSON.stringify(withKey.json()).includes(kms), 'the key ARN is granted')
})

t.test('refusals and their codes', async t => {
  const noRegion = await app(t)
  const cases: Array<[string, number, string]> = [
    ['/api/v1/policies/nope?account=111122223333&region=eu-west-1', 404, 'NFS_ERR_POLICY_NOT_FOUND'],
    ['/api/v1/policies/launcher?account=12&region=eu-west-1', 400, 'NFS_ERR_BAD_REQUEST'],
    ['/api/v1/policies/launcher?region=eu-west-1', 400, 'NFS_ERR_BAD_REQUEST'],
    ['/api/v1/policies/launcher?account=111122223333', 400, 'NFS_ERR_BAD_REQUEST'],
    ['/api/v1/policies/launcher?account=111122223333&region=eu-west-1&prefix=a*', 400, 'NFS_ERR_BAD_REQUEST'],
    ['/api/v1/policies/instance-role?account=111122223333&region=eu-west-1', 400, 'NFS_ERR_BAD_REQUEST'],
    ['/api/v1/policies/launcher?account=111122223333&region=eu-west-1&execution_role=x', 400, 'NFS_ERR_BAD_REQUEST'],
    ['/api/v1/policies/launcher?account=111122223333&region=eu-west-1&kmsKey=alias', 400, 'NFS_ERR_BAD_REQUEST']
  ]
  for (const [url, status, code] of cases) {
    const res = await noRegion.inject({ method: 'GET', url })
    t.equal(res.statusCode, status, url)
    t.equal(res.json().code, code, url)
  }
  // 90 characters: over the route's 64, under fastify's own 100-character parameter bound.
  const long = await noRegion.inject({ method: 'GET', url: `/api/v1/policies/${'x'.repeat(90)}` })
  t.equal(long.statusCode, 400)
  t.equal(long.json().code, 'NFS_ERR_BAD_REQUEST', 'an overlong name is refused by the schema')
})

t.test('renderParams: query over config, empty strings count as absent', async t => {
  t.same(renderParams({}, { prefix: 'p/', region: null }), { prefix: 'p/' })
  t.same(renderParams({ region: '' }, { prefix: 'p/', region: 'eu-west-1' }), { prefix: 'p/', region: 'eu-west-1' })
  t.same(renderParams({ account: ACCOUNT, prefix: 'q/', region: 'us-east-1', executionRole: 'r', kmsKey: 'k' }, { prefix: 'p/', region: 'eu-west-1' }),
    { account: ACCOUNT, prefix: 'q/', region: 'us-east-1', executionRole: 'r', kmsKey: 'k' })
})
