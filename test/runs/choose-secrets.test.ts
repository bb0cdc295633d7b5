import t from 'tap'
import { chooseSecrets } from '../../daemon/runs/choose-secrets.js'
import type { Resolved } from '../../daemon/rules/resolve.js'

const resolved: Resolved[] = [
  { name: 'A', source: 'workspace', scope: 'workspace:lab' },
  { name: 'B', source: 'user', scope: 'user:alice' },
  { name: 'C', source: 'workspace', scope: 'workspace:lab' }
]

function names (req: Parameters<typeof chooseSecrets>[1]): string[] | string {
  try {
    return chooseSecrets(resolved, req).map(r => `${r.scope}/${r.name}`)
  } catch (err) {
    return (err as { code: string }).code
  }
}

t.test('which secrets a run gets, as a table', async t => {
  const rows: Array<[string, Parameters<typeof chooseSecrets>[1], string[] | string]> = [
    ['neither only nor names: every resolved secret', {}, ['workspace:lab/A', 'user:alice/B', 'workspace:lab/C']],
    ['an empty only reads as none given', { only: [] }, ['workspace:lab/A', 'user:alice/B', 'workspace:lab/C']],
    ['only, in its own order, each name once', { only: ['C', 'A', 'C'] }, ['workspace:lab/C', 'workspace:lab/A']],
    ['only with a name not there', { only: ['A', 'Z'] }, 'NFS_ERR_UNKNOWN_SECRET'],
    ['only wins over names', { only: ['B'], names: ['Z'] }, ['user:alice/B']],
    ['names, in the resolved order', { names: ['C', 'B'] }, ['user:alice/B', 'workspace:lab/C']],
    ['names with one missing', { names: ['A', 'Z'] }, 'NFS_ERR_SECRET_MISSING'],
    ['names with one missing, allowed', { names: ['A', 'Z'], allowMissing: true }, ['workspace:lab/A']],
    ['no names at all', { names: [] }, []]
  ]
  for (const [what, req, expected] of rows) t.same(names(req), expected, what)
})
