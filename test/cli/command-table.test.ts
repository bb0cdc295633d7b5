// The command table, walked (issue 17): every command of every group has a usage and a summary, every option of its
// own a description, and its help (both spellings) lists each option with it within 80 columns. The personal scope has
// one name, SPEC's: "user secrets" (scope `user:NAME`; `personal` is only the name of the implicit workspace, SPEC 4),
// in help and in the output's structure.
import t from 'tap'
import { PassThrough } from 'node:stream'
import { commandHelp, GLOBAL_OPTIONS, HELP_WIDTH, helpText, type Command } from '../../daemon/cli/args.js'
import { commandsFor } from '../../daemon/cli/commands.js'
import { runCli } from '../../daemon/cli/main.js'
import { resolvedTable, secretDetail, secretsTable } from '../../daemon/cli/secrets.js'
import type { SecretMeta } from '../../daemon/types.js'

const all: Command[] = await commandsFor(undefined)

async function help (argv: string[]): Promise<string> {
  const out = new PassThrough()
  const chunks: Buffer[] = []
  out.on('data', (c: Buffer) => chunks.push(c))
  const io = { stdin: new PassThrough() as unknown as NodeJS.ReadStream, stdout: out, stderr: new PassThrough(), env: {}, cwd: '/' }
  t.equal(await runCli(argv, io), 0, argv.join(' '))
  return Buffer.concat(chunks).toString()
}

t.test('every command and option is described, and its help shows it within 80 columns', async t => {
  t.ok(all.length >= 30, 'every group loaded')
  for (const [name, spec] of Object.entries(GLOBAL_OPTIONS)) t.ok((spec.description ?? '').length > 0, `global --${name}`)
  for (const c of all) {
    const what = c.path.join(' ')
    t.ok(c.summary.trim().length > 0, `${what}: a summary`)
    t.type(c.usage, 'string', `${what}: a usage line`)
    const undescribed = Object.entries(c.options ?? {}).filter(([, s]) => (s.description ?? '').trim() === '').map(([n]) => `--${n}`)
    t.same(undescribed, [], `${what}: every option described`)
    const text = commandHelp(c)
    t.same(text.split('\n').filter(l => l.length > HELP_WIDTH), [], `${what}: no help line over ${HELP_WIDTH}`)
    t.equal(await help([...c.path, '--help']), text, `${what} --help`)
    t.equal(await help(['help', ...c.path]), text, `help ${what}`)
    for (const name of Object.keys(c.options ?? {})) t.ok(text.includes(`--${name}`), `${what}: lists --${name}`)
  }
  for (const group of new Set(all.map(c => c.path[0]!))) {
    t.same(helpText(all, [group]).split('\n').filter(l => l.length > HELP_WIDTH), [], `help ${group}`)
  }
})

t.test('one name for the personal scope: user secrets', async t => {
  const words = [
    ...all.flatMap(c => [c.summary, c.usage, ...Object.values(c.options ?? {}).map(o => o.description ?? '')]),
    ...Object.values(GLOBAL_OPTIONS).map(o => o.description)
  ].join('\n')
  t.notMatch(words, /personal (secret|one|scope)|your own secret|else your own\b|your personal/i, 'no other name for it in help')
  t.match(words, /user secrets/, 'help names it')

  const meta = (name: string, scope: SecretMeta['scope']): SecretMeta =>
    ({ name, scope, version: 1, createdAt: 'x', createdBy: 'a', updatedAt: '2026-01-01T00:00:00Z', updatedBy: 'a', lastUsed: null })
  // The table's SCOPE column and show's scope field carry the scope id; resolve's SOURCE says user or workspace.
  const table = secretsTable([meta('TOKEN', 'user:alice'), meta('TOKEN', 'workspace:lab')]).trim().split('\n').map(l => l.split(/\s{2,}/))
  t.same(table.map(r => r[1]), ['SCOPE', 'user:alice', 'workspace:lab'])
  t.same(secretDetail(meta('TOKEN', 'user:alice')).split('\n').find(l => l.startsWith('scope:'))?.split(/\s+/), ['scope:', 'user:alice'])
  const resolved = resolvedTable([{ name: 'TOKEN', source: 'user', scope: 'user:alice' }], undefined).trim().split('\n').map(l => l.split(/\s{2,}/))
  t.same(resolved, [['NAME', 'SOURCE', 'SCOPE'], ['TOKEN', 'user', 'user:alice']])
  t.notMatch(resolvedTable([], undefined), /personal/, 'no run "in personal"')
})
