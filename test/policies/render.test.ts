import t from 'tap'
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { listPolicies, renderPolicy, templatePath } from '../../policies/render.js'
import { isAllowed, wildcardMatch, type PolicyDocument } from '../helpers/iam-eval.js'

const BASE = { account: '111122223333', region: 'eu-west-1', executionRole: 'nf-batch-exec' }
const KEY = 'arn:aws:kms:eu-west-1:111122223333:key/0b5c4f2e-1111-2222-3333-444455556666'
const SECRET = (name: string, prefix = 'nf-secrets/'): string => `arn:aws:secretsmanager:eu-west-1:111122223333:secret:${prefix}${name}-Ab12Cd`
const VIA = { 'kms:ViaService': 'secretsmanager.eu-west-1.amazonaws.com' }

/** Problems that would make IAM refuse the document or leave a placeholder in it; empty when valid. */
function iamProblems (doc: Record<string, unknown>): string[] {
  const problems: string[] = []
  if (doc.Version !== '2012-10-17') problems.push('Version')
  if (/\$\{/.test(JSON.stringify(doc))) problems.push('a placeholder is left')
  const sids = new Set<string>()
  for (const s of doc.Statement as PolicyDocument['Statement']) {
    if (s.Effect !== 'Allow') problems.push(`${s.Sid}: Effect`)
    const actions = Array.isArray(s.Action) ? s.Action : [s.Action]
    if (actions.length === 0 || actions.some((a) => typeof a !== 'string' || !/^[a-z0-9-]+:[A-Za-z*]+$/.test(a))) problems.push(`${s.Sid}: Action`)
    if (s.Resource === undefined) problems.push(`${s.Sid}: Resource`)
    if (typeof s.Sid !== 'string' || !/^[A-Za-z0-9]+$/.test(s.Sid) || sids.has(s.Sid)) problems.push(`${s.Sid}: Sid`)
    sids.add(s.Sid ?? '')
  }
  return problems
}

t.test('every listed template renders to IAM JSON, with and without a KMS key', async (t) => {
  const names = listPolicies().map((p) => p.name)
  t.same(names.sort(), ['execution-role', 'instance-role', 'launcher'])
  for (const name of names) {
    const plain = renderPolicy(name, BASE)
    t.same(iamProblems(plain), [], `${name} without a key`)
    t.notMatch(JSON.stringify(plain), /kms:/, `${name}: no KMS statement without a key`)
    const keyed = renderPolicy(name, { ...BASE, kmsKey: KEY })
    t.same(iamProblems(keyed), [], `${name} with a key`)
    t.match(JSON.stringify(keyed), KEY, `${name}: the key ARN is in the KMS statement`)
  }
})

t.test('launcher grants exactly the adapter\'s calls on the prefix and ListSecrets alone on *', async (t) => {
  const doc = renderPolicy('launcher', { ...BASE, prefix: 'tower-' }) as unknown as PolicyDocument
  for (const a of ['CreateSecret', 'DeleteSecret', 'DescribeSecret', 'TagResource']) {
    t.ok(isAllowed(doc, `secretsmanager:${a}`, SECRET('R1/TOKEN', 'tower-')), `${a} on the prefix`)
    t.notOk(isAllowed(doc, `secretsmanager:${a}`, SECRET('R1/TOKEN', 'other-')), `${a} not outside the prefix`)
    t.notOk(isAllowed(doc, `secretsmanager:${a}`, '*'), `${a} not on *`)
  }
  t.ok(isAllowed(doc, 'secretsmanager:ListSecrets', '*'))
  for (const a of ['GetSecretValue', 'PutSecretValue', 'UpdateSecret', 'RestoreSecret', 'PutResourcePolicy']) {
    t.notOk(isAllowed(doc, `secretsmanager:${a}`, SECRET('R1/TOKEN', 'tower-')), `no ${a}`)
  }
  t.notOk(isAllowed(doc, 'iam:PassRole', 'arn:aws:iam::111122223333:role/nf-batch-exec'))
  const other = renderPolicy('launcher', { ...BASE, region: 'us-east-2' }) as unknown as PolicyDocument
  t.notOk(isAllowed(other, 'secretsmanager:CreateSecret', SECRET('R1/TOKEN')), 'bound to its region')

  const keyed = renderPolicy('launcher', { ...BASE, kmsKey: KEY }) as unknown as PolicyDocument
  t.ok(isAllowed(keyed, 'kms:GenerateDataKey', KEY, VIA))
  t.ok(isAllowed(keyed, 'kms:Encrypt', KEY, VIA))
  t.notOk(isAllowed(keyed, 'kms:GenerateDataKey', KEY), 'KMS only through Secrets Manager')
  t.notOk(isAllowed(keyed, 'kms:GenerateDataKey', KEY.replace('0b5c', 'ffff'), VIA), 'only that key')
})

t.test('execution-role and instance-role grant reading, and the instance role passes the execution role', async (t) => {
  const exec = renderPolicy('execution-role', BASE) as unknown as PolicyDocument
  t.ok(isAllowed(exec, 'secretsmanager:GetSecretValue', SECRET('R1/TOKEN')))
  t.notOk(isAllowed(exec, 'secretsmanager:ListSecrets', '*'))
  t.notOk(isAllowed(exec, 'secretsmanager:CreateSecret', SECRET('R1/TOKEN')))
  const inst = renderPolicy('instance-role', BASE) as unknown as PolicyDocument
  t.ok(isAllowed(inst, 'secretsmanager:GetSecretValue', SECRET('R1/TOKEN')))
  t.ok(isAllowed(inst, 'secretsmanager:ListSecrets', '*'))
  t.ok(isAllowed(inst, 'iam:PassRole', 'arn:aws:iam::111122223333:role/nf-batch-exec'))
  t.ok(isAllowed(inst, 'iam:GetRole', 'arn:aws:iam::111122223333:role/nf-batch-exec'))
  t.notOk(isAllowed(inst, 'iam:PassRole', 'arn:aws:iam::111122223333:role/admin'))
  const keyed = renderPolicy('execution-role', { ...BASE, kmsKey: '0b5c4f2e-1111-2222-3333-444455556666' }) as unknown as PolicyDocument
  t.ok(isAllowed(keyed, 'kms:Decrypt', KEY, VIA), 'a bare key id becomes the key ARN')
})

t.test('missing and bad parameters, unknown names', async (t) => {
  t.throws(() => renderPolicy('root', BASE), { code: 'NFS_ERR_POLICY_NOT_FOUND' })
  t.throws(() => renderPolicy('../package', BASE), { code: 'NFS_ERR_POLICY_NOT_FOUND' })
  t.throws(() => renderPolicy('launcher', { region: 'eu-west-1' }), { code: 'NFS_ERR_BAD_REQUEST' })
  t.throws(() => renderPolicy('launcher', { account: '111122223333' }), { code: 'NFS_ERR_BAD_REQUEST' })
  t.throws(() => renderPolicy('instance-role', { account: BASE.account, region: BASE.region }), { code: 'NFS_ERR_BAD_REQUEST' },
    'the instance role needs the execution role name')
  t.ok(renderPolicy('launcher', { account: BASE.account, region: BASE.region }), 'launcher does not')
  t.throws(() => renderPolicy('launcher', { ...BASE, account: '12345' }), { code: 'NFS_ERR_BAD_REQUEST' })
  t.throws(() => renderPolicy('launcher', { ...BASE, prefix: 'a*' }), { code: 'NFS_ERR_BAD_REQUEST' }, 'no wildcard smuggled in')
  t.throws(() => renderPolicy('launcher', { ...BASE, prefix: 'x","Resource":"*' }), { code: 'NFS_ERR_BAD_REQUEST' })
  t.throws(() => renderPolicy('instance-role', { ...BASE, executionRole: 'arn:aws:iam::1:role/x' }), { code: 'NFS_ERR_BAD_REQUEST' })
  t.throws(() => renderPolicy('launcher', { ...BASE, kmsKey: 'alias-nope' }), { code: 'NFS_ERR_BAD_REQUEST' })
})

t.test('templates are found from source and from a compiled dist/policies/', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'nfs-policies-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  mkdirSync(join(root, 'policies'))
  mkdirSync(join(root, 'dist', 'policies'), { recursive: true })
  cpSync(templatePath('launcher'), join(root, 'policies', 'launcher.json'))
  writeFileSync(join(root, 'dist', 'policies', 'render.js'), '')
  t.equal(templatePath('launcher', pathToFileURL(join(root, 'dist', 'policies', 'render.js')).href), join(root, 'policies', 'launcher.json'))
  t.throws(() => templatePath('launcher', pathToFileURL(join(root, 'a', 'b', 'c', 'render.js')).href), { code: 'NFS_ERR_POLICY_NOT_FOUND' })
})

t.test('the evaluator matches like IAM', async (t) => {
  t.ok(wildcardMatch('arn:aws:secretsmanager:*:1:secret:nf-secrets/*', 'arn:aws:secretsmanager:eu-west-1:1:secret:nf-secrets/R/N-abc'))
  t.notOk(wildcardMatch('arn:aws:secretsmanager:*:1:secret:nf-secrets/*', 'arn:aws:secretsmanager:eu-west-1:1:secret:nf-secretsX'))
  t.ok(wildcardMatch('secretsmanager:create?ecret', 'secretsmanager:CreateSecret', true), 'actions ignore case')
  t.notOk(wildcardMatch('a.b', 'aXb'), 'a dot is literal')
  const doc: PolicyDocument = {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: 'secretsmanager:*', Resource: '*' },
      { Effect: 'Deny', Action: 'secretsmanager:DeleteSecret', Resource: '*' }
    ]
  }
  t.ok(isAllowed(doc, 'secretsmanager:CreateSecret', 'x'))
  t.notOk(isAllowed(doc, 'secretsmanager:DeleteSecret', 'x'), 'an explicit deny wins')
})
