import t from 'tap'
import { checkSecretName, checkSecretValue, checkWorkspaceName, isValidSecretName } from '../../daemon/rules/validate.js'

function code (fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

t.test('Nextflow\'s name rule', async t => {
  const valid = ['AB', 'A_', '_A', 'API_TOKEN', 'a1', 'x'.repeat(100), 'A_B_C', 'A' + 'b'.repeat(60)]
  const invalid = ['A', '', '1A', '__A', 'A__B', 'A-B', 'A B', 'A.B', 'x'.repeat(101), 'A_'.repeat(30), 'ÄB', 'AB\n']
  for (const n of valid) t.ok(isValidSecretName(n), `valid: ${n.slice(0, 20)}`)
  for (const n of invalid) t.equal(code(() => checkSecretName(n)), 'NFS_ERR_INVALID_NAME', `invalid: ${JSON.stringify(n.slice(0, 20))}`)
  t.equal(code(() => checkSecretName(42)), 'NFS_ERR_INVALID_NAME')
})

t.test('values: size, encoding and the characters Nextflow cannot pass', async t => {
  t.equal(checkSecretValue('s3cr3t-token'), 12)
  t.equal(checkSecretValue('costs $5 and c2lnbmluZy1rZXk='), 29)
  t.equal(checkSecretValue('x'.repeat(65_536)), 65_536)
  t.equal(checkSecretValue('é'), 2)
  const cases: Array<[unknown, string]> = [
    ['', 'NFS_ERR_VALUE_SIZE'],
    ['x'.repeat(65_537), 'NFS_ERR_VALUE_SIZE'],
    ['é'.repeat(32_769), 'NFS_ERR_VALUE_SIZE'],
    ['a\0b', 'NFS_ERR_VALUE_ENCODING'],
    ['a\uD800b', 'NFS_ERR_VALUE_ENCODING'],
    ['line1\nline2', 'NFS_ERR_VALUE_CHARACTER'],
    ['a\rb', 'NFS_ERR_VALUE_CHARACTER'],
    ['say "hi"', 'NFS_ERR_VALUE_CHARACTER'],
    ['`id`', 'NFS_ERR_VALUE_CHARACTER'],
    ['C:\\path', 'NFS_ERR_VALUE_CHARACTER'],
    [42, 'NFS_ERR_BAD_REQUEST']
  ]
  for (const [v, c] of cases) t.equal(code(() => checkSecretValue(v)), c, `${JSON.stringify(String(v).slice(0, 12))} -> ${c}`)
})

t.test('a refused value is never in the error', async t => {
  const canary = 'CANARY-"7f3a9c"-VALUE'
  try {
    checkSecretValue(canary)
    t.fail('should refuse')
  } catch (err) {
    t.notMatch(JSON.stringify({ ...(err as object), message: (err as Error).message }), '7f3a9c')
  }
})

t.test('workspace names', async t => {
  for (const n of ['genomics', 'lab-1', 'a', 'x_y']) t.equal(checkWorkspaceName(n), n)
  for (const n of ['', 'Genomics', '-x', 'a/b', '../x', 'x'.repeat(65)]) t.equal(code(() => checkWorkspaceName(n)), 'NFS_ERR_INVALID_WORKSPACE', n)
})
