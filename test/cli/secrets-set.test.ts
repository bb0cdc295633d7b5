// `secrets set`'s orchestration (create or overwrite, compare-and-swap on the version it read): which requests it
// sends, with which If-Match, and when it reads again. The client is an in-memory fake of the daemon's answers; the
// real daemon is exercised in test/e2e/secrets-set.test.ts.
import t from 'tap'
import type { ApiClient, RequestOptions } from '../../daemon/cli/client.js'
import { CliError } from '../../daemon/cli/client.js'
import { SET_ATTEMPTS, setSecret } from '../../daemon/cli/secrets.js'
import type { SecretMeta } from '../../daemon/types.js'

const meta = (name: string, scope: SecretMeta['scope'], version: number): SecretMeta =>
  ({ name, scope, version, createdAt: 'x', createdBy: 'alice', updatedAt: 'x', updatedBy: 'alice', lastUsed: null })

/** A client answering from a script of results, recording each request. */
function fake (answers: Array<unknown | CliError>): { client: ApiClient, sent: Array<[string, string, RequestOptions | undefined]> } {
  const sent: Array<[string, string, RequestOptions | undefined]> = []
  const client: ApiClient = {
    socketPath: '/x',
    async request<T> (method: string, path: string, options?: RequestOptions): Promise<T> {
      sent.push([method, path, options])
      const a = answers.shift()
      if (a instanceof CliError) throw a
      return a as T
    },
    async close () {}
  }
  return { client, sent }
}

t.test('absent: created with POST', async t => {
  const { client, sent } = fake([[meta('TOKEN', 'workspace:lab', 4)], meta('TOKEN', 'user:alice', 1)])
  const r = await setSecret(client, 'TOKEN', 'v', undefined)
  t.same(r, { meta: meta('TOKEN', 'user:alice', 1), created: true }, 'a workspace\'s secret of that name is another one')
  t.same(sent.map(([m, p]) => `${m} ${p}`), ['GET /secrets', 'POST /secrets'])
  t.same(sent[1]![2]!.body, { name: 'TOKEN', value: 'v' })
})

t.test('present: replaced with PUT If-Match its version, in the workspace named', async t => {
  const { client, sent } = fake([[meta('TOKEN', 'user:alice', 2), meta('TOKEN', 'workspace:lab', 7)], meta('TOKEN', 'workspace:lab', 8)])
  const r = await setSecret(client, 'TOKEN', 'v', 'lab')
  t.equal(r.created, false)
  t.same(sent[1], ['PUT', '/secrets/TOKEN', { body: { value: 'v', workspace: 'lab' }, headers: { 'if-match': '"7"' } }])
})

t.test('another writer in between: read again and write against what is there now', async t => {
  const { client, sent } = fake([
    [], new CliError('NFS_ERR_SECRET_EXISTS', 'exists', 409),
    [meta('TOKEN', 'user:alice', 1)], new CliError('NFS_ERR_CONFLICT', 'moved', 409),
    [meta('TOKEN', 'user:alice', 2)], meta('TOKEN', 'user:alice', 3)
  ])
  const r = await setSecret(client, 'TOKEN', 'v', 'personal')
  t.same(r.meta.version, 3)
  t.same(sent.map(([m]) => m), ['GET', 'POST', 'GET', 'PUT', 'GET', 'PUT'])
  t.same(sent[5]![2]!.headers, { 'if-match': '"2"' })
  t.same(sent[0]![2]!.query, { workspace: undefined }, '-w personal is the personal scope')
})

t.test('a race that keeps losing ends with the conflict; other errors at once', async t => {
  const lose = Array.from({ length: SET_ATTEMPTS }, () => [[meta('TOKEN', 'user:alice', 1)], new CliError('NFS_ERR_CONFLICT', 'moved', 409)]).flat()
  await t.rejects(setSecret(fake(lose).client, 'TOKEN', 'v', undefined), { code: 'NFS_ERR_CONFLICT' })
  const forbidden = fake([[], new CliError('NFS_ERR_FORBIDDEN', 'no', 403)])
  await t.rejects(setSecret(forbidden.client, 'TOKEN', 'v', 'lab'), { code: 'NFS_ERR_FORBIDDEN' })
  t.equal(forbidden.sent.length, 2)
})
