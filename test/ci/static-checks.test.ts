// What CI checks beyond behaviour (issue 15): no import cycle among the daemon's modules (dependency-cruiser, type-only
// imports included), the whole tree typechecks, test/ and bench/ too (the build compiles only daemon/, adapters/
// and policies/, so a test or bench could rot unnoticed), and the linter finds nothing anywhere (`npm run lint`).
// Each runs as the command a contributor would type.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { ROOT } from '../helpers/daemon.js'

const bin = (name: string): string => join(ROOT, 'node_modules', '.bin', name)

t.test('no import cycle in daemon/, adapters/, policies/', async t => {
  const r = spawnSync(bin('depcruise'), ['daemon', 'adapters', 'policies', '--config', '.dependency-cruiser.cjs'], { cwd: ROOT, encoding: 'utf8', timeout: 240_000 })
  t.equal(r.status, 0, `dependency-cruiser found a cycle:\n${r.stdout.slice(-3000)}${r.stderr.slice(-1000)}`)
})

t.test('tsc --noEmit over daemon/, adapters/, policies/, test/ and bench/', async t => {
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--noEmit'], { cwd: ROOT, encoding: 'utf8', timeout: 280_000 })
  t.equal(r.status, 0, `type errors:\n${r.stdout.slice(-3000)}`)
})

t.test('eslint finds nothing: daemon/, adapters/, policies/, test/, bench/, scripts/ (npm run lint)', async t => {
  const r = spawnSync(bin('eslint'), ['.', '--max-warnings', '0'], { cwd: ROOT, encoding: 'utf8', timeout: 280_000 })
  t.equal(r.status, 0, `eslint findings (npx eslint --fix . mends the style ones):\n${r.stdout.slice(-3000)}${r.stderr.slice(-1000)}`)
})
