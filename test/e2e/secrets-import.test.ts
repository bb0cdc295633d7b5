// `secrets import --from-nextflow` end to end: stores written exactly as Nextflow's LocalSecretsProvider writes them
// (Gson pretty print, 2-space indent, `=` as \u003d, sorted by name, no trailing newline, 0600, with .nf-<hash>.secrets
// env files beside it: NOTES.md 1.3 and 1.6). All or nothing on a refused entry, a clash skipped without --overwrite,
// --shred leaving no plaintext, and no value in any output or log.
import t from 'tap'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { startTestDaemon, tempDir } from '../helpers/daemon.js'
import { errorCode, json, runCli, type RunOptions, type RunResult } from '../helpers/cli.js'
import { storedValue } from '../helpers/store-peek.js'

t.setTimeout(600_000)
const dir = tempDir(t)
const d = await startTestDaemon(t, { mode: 'user', dir })
const me = spawnSync('id', ['-un'], { encoding: 'utf8' }).stdout.trim()
const mine = `user:${me}` as const
const home = join(dir, 'home')
mkdirSync(home)

function cli (args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return runCli(['--socket', d.socket, ...args], { cwd: home, ...opts, env: { HOME: home, ...opts.env } })
}

/** A store as Nextflow writes it (Gson: pretty, HTML-escaped, sorted, no trailing newline), mode 0600. */
function nextflowStore (path: string, entries: Record<string, string>): void {
  const gson = (s: string): string => JSON.stringify(s).replace(/[<>&='\u2028\u2029]/g, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  const body = Object.keys(entries).sort().map(n => `  {\n    "name": ${gson(n)},\n    "value": ${gson(entries[n]!)}\n  }`).join(',\n')
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 })
  writeFileSync(path, entries === null || Object.keys(entries).length === 0 ? '[]' : `[\n${body}\n]`, { mode: 0o600 })
  chmodSync(path, 0o600)
}
/** Nextflow's .nf-<murmur3 hex>.secrets: every secret as `export NAME="value"` with only $ escaped. */
function envFile (dir: string, hash: string, entries: Record<string, string>): string {
  const p = join(dir, `.nf-${hash}.secrets`)
  writeFileSync(p, Object.entries(entries).map(([n, v]) => `export ${n}="${v.replace(/\$/g, '\\$')}"`).join('\n') + '\n', { mode: 0o600 })
  return p
}

const CANARY = `canary-${process.pid}-x`
const GOOD = { API_TOKEN: `s3cr3t-${CANARY}`, DB_PASSWORD: 'hunter2', PRICE_TAG: 'costs $5', SIGNING_KEY_B64: 'c2lnbmluZy1rZXk=' }

t.test('a refused entry: nothing imported, every refusal listed with its code', async t => {
  const store = join(dir, 'bad', 'store.json')
  nextflowStore(store, { ...GOOD, QUOTED: `has "quote" ${CANARY}`, 'bad-name': 'v', A: 'short-name' })
  const before = readFileSync(store)
  const r = await cli(['secrets', 'import', '--from-nextflow', store, '--json'])
  t.equal(r.code, 2, r.stderr)
  const out = json<{ imported: unknown[], refused: Array<{ name: string, code: string }> }>(r.stdout.trim())
  t.same(out.refused.map(x => [x.name, x.code]).sort(), [['"A"', 'NFS_ERR_INVALID_NAME'], ['"QUOTED"', 'NFS_ERR_VALUE_CHARACTER'], ['"bad-name"', 'NFS_ERR_INVALID_NAME']])
  t.equal(storedValue(d.stateDir, mine, 'API_TOKEN'), null, 'nothing was imported')
  t.same(readFileSync(store), before, 'the store is left as it was')
  t.notMatch(r.stdout + r.stderr, CANARY)
})

t.test('import: exact values; a name that exists is skipped, --overwrite replaces it', async t => {
  t.equal((await cli(['secrets', 'add', 'DB_PASSWORD'], { input: 'mine-already' })).code, 0)
  nextflowStore(join(home, '.nextflow', 'secrets', 'store.json'), GOOD)
  const r = await cli(['secrets', 'import', '--from-nextflow', '--json'])
  t.equal(r.code, 0, r.stderr)
  const out = json<{ imported: Array<{ name: string }>, skipped: Array<{ name: string, reason: string }> }>(r.stdout)
  t.same(out.imported.map(i => i.name).sort(), ['API_TOKEN', 'PRICE_TAG', 'SIGNING_KEY_B64'])
  t.same(out.skipped, [{ name: 'DB_PASSWORD', reason: 'exists' }])
  t.equal(storedValue(d.stateDir, mine, 'DB_PASSWORD'), 'mine-already', 'not overwritten')
  t.equal(storedValue(d.stateDir, mine, 'SIGNING_KEY_B64'), 'c2lnbmluZy1rZXk=', 'Gson\'s \\u003d read back as =')
  t.equal(storedValue(d.stateDir, mine, 'PRICE_TAG'), 'costs $5')
  t.equal(storedValue(d.stateDir, mine, 'API_TOKEN'), GOOD.API_TOKEN)

  const over = await cli(['secrets', 'import', '--from-nextflow', '--overwrite', '--json'])
  t.equal(over.code, 0, over.stderr)
  t.equal(storedValue(d.stateDir, mine, 'DB_PASSWORD'), 'hunter2')
  t.ok(existsSync(join(home, '.nextflow', 'secrets', 'store.json')), 'without --shred the file stays')
  t.notMatch(over.stdout + over.stderr + r.stdout + r.stderr + d.log(), CANARY)
})

t.test('--shred: refused while a clash would lose a value; then nothing plaintext is left', async t => {
  const sdir = join(dir, 'nxf', 'secrets')
  const store = join(sdir, 'store.json')
  const fresh = { NEW_ONE: `fresh-${CANARY}`, DB_PASSWORD: 'other' }
  nextflowStore(store, fresh)
  const env1 = envFile(sdir, '3f0c2a5e9b1d4c7a8e6f0b2d4c6a8e0f', fresh)
  const env2 = envFile(sdir, '0123456789abcdef0123456789abcdef', { OLD: 'x' })
  const victim = join(dir, 'victim.txt')
  writeFileSync(victim, 'keep me')
  symlinkSync(victim, join(sdir, '.nf-link.secrets'))
  writeFileSync(join(sdir, 'unrelated.txt'), 'stays')
  const nxfEnv = { NXF_HOME: join(dir, 'nxf'), NXF_SECRETS_FILE: 'secrets/store.json' }

  const clash = await cli(['secrets', 'import', '--from-nextflow', '--shred'], { env: nxfEnv })
  t.equal(clash.code, 5, clash.stderr)
  t.equal(errorCode(clash.stderr), 'NFS_ERR_CONFLICT')
  t.equal(storedValue(d.stateDir, mine, 'NEW_ONE'), null, 'nothing imported')
  t.ok(existsSync(store) && existsSync(env1), 'nothing shredded')

  const r = await cli(['secrets', 'import', '--from-nextflow', '--shred', '--overwrite', '--json'], { env: nxfEnv })
  t.equal(r.code, 0, r.stderr)
  t.same(json<{ shredded: string[] }>(r.stdout).shredded, [store, env2, env1].sort((a, b) => a === store ? -1 : b === store ? 1 : a < b ? -1 : 1))
  t.equal(storedValue(d.stateDir, mine, 'NEW_ONE'), fresh.NEW_ONE)
  t.same(readdirSync(sdir).sort(), ['.nf-link.secrets', 'unrelated.txt'], 'store and env files gone; a symlink is not followed')
  t.equal(readFileSync(victim, 'utf8'), 'keep me', 'the symlink\'s target is untouched')
  t.notMatch(r.stdout + r.stderr + d.log(), CANARY)
})
