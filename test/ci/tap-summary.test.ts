import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { closingLine, parseTapSummary, summarize } from '../../scripts/ci/tap-summary.mjs'

// Outputs captured from real tap 21 runs (paths rewritten), plus the shapes tap can print that a small suite
// does not produce: counts broken over lines by util.inspect, colours, a run killed half-way, a failed build.
const fixture = (name: string) => fileURLToPath(new URL(`fixtures/${name}`, import.meta.url))
const read = (name: string) => readFileSync(fixture(name), 'utf8')
const script = fileURLToPath(new URL('../../scripts/ci/tap-summary.mjs', import.meta.url))

t.test('parseTapSummary reads tap\'s closing counts', async t => {
  const cases: Array<[string, ReturnType<typeof parseTapSummary>]> = [
    ['npm-test-pass.txt', { total: 6, pass: 6, fail: 0, skip: 0, todo: 0 }],
    ['tap-mixed.txt', { total: 9, pass: 4, fail: 2, skip: 2, todo: 1 }],
    ['tap-multiline.txt', { total: 123456789, pass: 123456000, fail: 700, skip: 49, todo: 40 }],
    ['tap-colored.txt', { total: 2, pass: 1, fail: 0, skip: 1, todo: 0 }],
    ['tap-killed.txt', null],
    ['build-failed.txt', null]
  ]
  for (const [name, want] of cases) t.same(parseTapSummary(read(name)), want, name)
})

t.test('an indented comment of a subtest is not the summary', async t => {
  t.equal(parseTapSummary('# Subtest: x\n    # { total: 99, pass: 99 }\nok 1 - x\n'), null)
  t.equal(parseTapSummary('# { pass: 3 }\n'), null, 'counts without a total are not tap\'s')
})

t.test('closingLine appends skipped only when some were', async t => {
  t.equal(closingLine({ passed: 5, failed: 1, skipped: 0 }), '5 passed, 1 failed')
  t.equal(closingLine({ passed: 5, failed: 0, skipped: 2 }), '5 passed, 0 failed, 2 skipped')
})

t.test('summarize sums every tap invocation and counts a missing summary as a failure', async t => {
  const sum = summarize(['npm-test-pass.txt', 'tap-mixed.txt', 'tap-killed.txt'].map(name => ({ name, text: read(name) })))
  t.same(sum, { passed: 10, failed: 3, skipped: 2, missing: ['tap-killed.txt'] })
})

t.test('the CLI ends with the closing line and exits by the result', async t => {
  const run = (...names: string[]) => {
    const r = spawnSync(process.execPath, [script, ...names.map(fixture)], { encoding: 'utf8' })
    return { status: r.status, last: r.stdout.trimEnd().split('\n').at(-1), stderr: r.stderr }
  }
  t.same(run('npm-test-pass.txt'), { status: 0, last: '6 passed, 0 failed', stderr: '' })
  t.same(run('tap-colored.txt', 'npm-test-pass.txt'), { status: 0, last: '7 passed, 0 failed, 1 skipped', stderr: '' })
  t.match(run('tap-mixed.txt'), { status: 1, last: '4 passed, 2 failed, 2 skipped' })
  t.match(run('npm-test-pass.txt', 'build-failed.txt'), { status: 1, last: '6 passed, 1 failed' })
  t.match(run('no-such-output.txt'), { status: 1, last: '0 passed, 1 failed' })
  t.equal(spawnSync(process.execPath, [script]).status, 2, 'usage error without files')
})
