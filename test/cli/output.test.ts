import t from 'tap'
import { PassThrough } from 'node:stream'
import { createOutput, formatDuration, renderFields, renderMap, renderTable, safeText, shortTime } from '../../daemon/cli/output.js'
import { secretsTable, resolvedTable } from '../../daemon/cli/secrets.js'
import { membersTable, workspacesTable } from '../../daemon/cli/workspaces.js'
import { eventLine } from '../../daemon/cli/events.js'
import { statusText, whoamiText } from '../../daemon/cli/system.js'
import type { SecretMeta } from '../../daemon/types.js'

function capture (): { stream: PassThrough, text: () => string } {
  const stream = new PassThrough()
  const chunks: Buffer[] = []
  stream.on('data', (c: Buffer) => chunks.push(c))
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') }
}

t.test('tables align columns and show empty cells as -', async t => {
  const text = renderTable(['NAME', 'SCOPE', 'N'], [['A', 'user:alice', 1], ['LONGER_NAME', null, 22]])
  t.equal(text, [
    'NAME         SCOPE       N',
    'A            user:alice  1',
    'LONGER_NAME  -           22',
    ''
  ].join('\n'))
})

t.test('control characters never reach the terminal raw', async t => {
  t.equal(safeText('a\x1b[2Jb\nc\x7f'), 'a\\x1b[2Jb\\x0ac\\x7f')
  t.notMatch(renderTable(['X'], [['\x1b]0;title\x07']]), '\x1b')
  t.equal(safeText('plain ünïcode'), 'plain ünïcode')
})

t.test('times, durations, fields and maps', async t => {
  t.equal(shortTime('2026-01-02T03:04:05.678Z'), '2026-01-02 03:04:05')
  t.equal(shortTime(null), '-')
  t.equal(formatDuration(5), '5s')
  t.equal(formatDuration(3725), '1h 2m')
  t.equal(formatDuration(90061), '1d 1h')
  t.equal(renderFields([['a', 1], ['long', null]]), 'a:    1\nlong: -\n')
  t.equal(renderMap({ running: 2, armed: 1 }), 'running=2, armed=1')
  t.equal(renderMap({}), '-')
})

t.test('--json prints the data itself; otherwise the human text', async t => {
  const data = [{ name: 'A', scope: 'user:u' }]
  const j = capture()
  createOutput(true, j.stream).result(data, () => 'human')
  t.same(JSON.parse(j.text()), data)
  const h = capture()
  createOutput(false, h.stream).result(data, () => 'human')
  t.equal(h.text(), 'human\n')
  const l = capture()
  const out = createOutput(true, l.stream)
  out.line({ type: 'a' }, () => 'x')
  out.line({ type: 'b' }, () => 'x')
  t.same(l.text().trim().split('\n').map(s => JSON.parse(s)), [{ type: 'a' }, { type: 'b' }], 'one JSON object a line')
})

const meta: SecretMeta = {
  name: 'API_TOKEN',
  scope: 'workspace:lab',
  createdAt: '2026-01-01T00:00:00Z',
  createdBy: 'alice',
  updatedAt: '2026-01-02T00:00:00Z',
  updatedBy: 'bob',
  lastUsed: null,
  version: 3
}

t.test('command renderers', async t => {
  const secrets = secretsTable([meta])
  t.match(secrets, /^NAME\s+SCOPE\s+VERSION\s+UPDATED\s+BY\s+LAST USED\n/)
  t.match(secrets, /API_TOKEN\s+workspace:lab\s+3\s+2026-01-02 00:00:00\s+bob\s+-/)
  t.equal(secretsTable([]), 'No secrets.\n')
  t.match(resolvedTable([{ name: 'API_TOKEN', source: 'user', scope: 'user:alice' }], 'lab'), /API_TOKEN\s+user\s+user:alice/)
  const ws = { name: 'lab', role: 'owner' as const, members: { carol: 'view' as const, alice: 'owner' as const }, groups: { genomics: 'launch' as const }, createdAt: '2026-01-01T00:00:00Z', createdBy: 'root', version: 1 }
  t.same(membersTable(ws).trim().split('\n').map(l => l.split(/\s+/)), [['KIND', 'NAME', 'ROLE'], ['user', 'alice', 'owner'], ['user', 'carol', 'view'], ['group', 'genomics', 'launch']])
  t.match(workspacesTable([ws]), /lab\s+owner\s+2\s+1\s+/)
  t.equal(eventLine({ type: 'secret.created', at: '2026-01-01T00:00:00Z', user: 'alice', workspace: 'lab', names: ['A', 'B'] }),
    '2026-01-01 00:00:00  secret.created  user=alice  workspace=lab  names=A,B')
  const status = statusText({
    version: '0.1.0',
    mode: 'system',
    pid: 1,
    startedAt: '2026-01-01T00:00:00Z',
    uptimeSeconds: 61,
    secrets: 2,
    workspaces: 1,
    runs: { running: 1 },
    targets: { hpc: { usable: true }, aws: { usable: false, detail: 'no region' } },
    watches: { roots: 0, launchDirs: 0, degraded: [] }
  })
  t.match(status, /mode:\s+system/)
  t.match(status, /runs:\s+running=1/)
  t.match(status, /hpc: usable\n/)
  t.match(status, /aws: not usable: no region/)
  t.match(whoamiText({ user: 'bob', uid: 1002, gid: 1002, groups: ['bob'], admin: false, roles: { personal: 'owner' } }), /user:\s+bob[\s\S]*personal\s+owner/)
})
