import t from 'tap'
import { chooseNamed, chooseSecrets } from '../../daemon/runs/choose-secrets.js'
import { resolveSecrets, type Resolved } from '../../daemon/rules/resolve.js'
import type { Scope, SecretMeta } from '../../daemon/types.js'

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

// An arm with --only finds its secrets by name (chooseNamed) instead of resolving the whole store and narrowing it:
// for any store and any --only, the same secrets from the same scopes in the same order, or the same refusal.
t.test('chooseNamed answers as resolving everything, then choosing', async t => {
  let seed = 7
  const next = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n }
  const meta = (scope: Scope, name: string): SecretMeta => ({ name, scope, createdAt: '', createdBy: 'x', updatedAt: '', updatedBy: 'x', lastUsed: null, version: 1 })
  const pool = ['A', 'B', 'C', 'D', 'E', 'F', '__proto__', 'constructor']
  let compared = 0
  let refused = 0
  const differ: string[] = []
  for (let i = 0; i < 400; i++) {
    const user: Scope = 'user:alice'
    const ws: Scope | null = next(3) === 0 ? null : 'workspace:lab'
    const mine = pool.filter(() => next(3) === 0).map(n => meta(user, n))
    const theirs = ws === null ? [] : pool.filter(() => next(2) === 0).map(n => meta(ws, n))
    const only = Array.from({ length: 1 + next(5) }, () => pool[next(pool.length)]!)
    const has = (scope: Scope, name: string): boolean => [...mine, ...theirs].some(m => m.scope === scope && m.name === name)
    const answer = (f: () => Resolved[]): Resolved[] | string => { try { return f() } catch (err) { return (err as { code: string }).code } }
    const expected = answer(() => chooseSecrets(resolveSecrets(mine, theirs), { only }))
    const got = answer(() => chooseNamed(only, has, user, ws))
    if (typeof expected === 'string') refused++
    compared++
    if (JSON.stringify(got) !== JSON.stringify(expected)) differ.push(`only ${JSON.stringify(only)}, user ${mine.map(m => m.name).join(' ')}, workspace ${theirs.map(m => m.name).join(' ')}: ${JSON.stringify(got)} against ${JSON.stringify(expected)}`)
  }
  t.same(differ, [], 'no store and --only where the two differ')
  // Both kinds of answer were compared, not only one.
  t.ok(refused > 20 && refused < compared - 20, `${refused} refusals of ${compared}`)
})
