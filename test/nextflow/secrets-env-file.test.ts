// The sourcing line of a task's .command.run and Nextflow's .nf-<hash>.secrets export file (NOTES.md 1.6), table-tested.
import t from 'tap'
import { formatSecretsEnvFile, parseSecretsSourcing, rerunMarkLine, secretsFilePathProblem } from '../../daemon/nextflow/secrets-env-file.js'

const HASH = '3f0c2a5e9b1d4c7a8e6f0b2d4c6a8e0f'
const line = (names: string[], path: string): string =>
  `    source /dev/stdin <<<"$(cat <(grep -w ${names.map(n => `-e '${n}=.*'`).join(' ')} ${path}))"`
const wrapper = (...body: string[]): string => ['#!/bin/bash', '# NEXTFLOW TASK: PRINT (1)', 'set -e', 'set -u', 'nxf_main() {', '    set -u', ...body, '    /bin/bash -ue .command.sh', '}', '$NXF_ENTRY'].join('\n')

t.test('parseSecretsSourcing', async t => {
  const path = `/home/alice/.nextflow/secrets/.nf-${HASH}.secrets`
  const cases: Array<[string, string, unknown]> = [
    ['two names', wrapper(line(['API_TOKEN', 'DB_PASSWORD'], path)), { path, names: ['API_TOKEN', 'DB_PASSWORD'] }],
    ['one name, a runs-root store dir', wrapper(line(['A_B'], `/var/lib/nf-secretsd/runs/alice/Ab3dEf6hIj9kLm/.nf-${HASH}.secrets`)),
      { path: `/var/lib/nf-secretsd/runs/alice/Ab3dEf6hIj9kLm/.nf-${HASH}.secrets`, names: ['A_B'] }],
    ['a name twice', wrapper(line(['A1', 'A1'], path)), { path, names: ['A1'] }],
    ['the 2024 uuid name', wrapper(line(['A1'], '/s/.nf-0a1b2c3d-0a1b-4c3d-8e9f-0a1b2c3d4e5f.secrets')), { path: '/s/.nf-0a1b2c3d-0a1b-4c3d-8e9f-0a1b2c3d4e5f.secrets', names: ['A1'] }],
    ['no secrets', wrapper(), null],
    ['in a comment or an echo: not the line', wrapper(`    # ${line(['A1'], path).trim()}`, `    echo '${line(['A1'], path).trim()}'`), null]
  ]
  for (const [what, text, want] of cases) t.same(parseSecretsSourcing(text), want, what)

  const refused: Array<[string, string]> = [
    ['two sourcing lines', wrapper(line(['A1'], path), line(['B1'], path))],
    ['a relative path', wrapper(line(['A1'], `.nf-${HASH}.secrets`))],
    ['a dot-dot path', wrapper(line(['A1'], `/home/alice/../bob/.nf-${HASH}.secrets`))],
    ['not Nextflow\'s file name', wrapper(line(['A1'], '/home/alice/.ssh/authorized_keys'))],
    ['a name that is not a hash', wrapper(line(['A1'], '/home/alice/.nf-zzz.secrets'))]
  ]
  for (const [what, text] of refused) t.throws(() => parseSecretsSourcing(text), TypeError, what)
})

t.test('secretsFilePathProblem', async t => {
  t.equal(secretsFilePathProblem(`/a/b/.nf-${HASH}.secrets`), null)
  for (const bad of ['a/.nf-x.secrets', `/a//.nf-${HASH}.secrets`, `/a/./.nf-${HASH}.secrets`, `/a b/.nf-${HASH}.secrets`, `/a$x/.nf-${HASH}.secrets`, '/a/b/store.json', `/a/.nf-${HASH}.secrets.tmp`]) {
    t.not(secretsFilePathProblem(bad), null, bad)
  }
})

t.test('formatSecretsEnvFile: Nextflow\'s lines, sorted, only $ escaped, headed by the rerun\'s mark', async t => {
  const text = formatSecretsEnvFile('Ab3dEf6hIj9kLm', [{ name: 'PRICE_TAG', value: 'costs $5' }, { name: 'API_TOKEN', value: 's3cr3t' }])
  t.equal(text, `${rerunMarkLine('Ab3dEf6hIj9kLm')}\nexport API_TOKEN="s3cr3t"\nexport PRICE_TAG="costs \\$5"\n`)
  // The wrapper's grep -w -e 'NAME=.*' never picks the mark.
  t.notMatch(rerunMarkLine('Ab3dEf6hIj9kLm'), /[A-Za-z0-9_]=/)
})
