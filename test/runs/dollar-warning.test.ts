// Nextflow before 24.04.2 writes secret values into the env file its tasks source without escaping `$`: a run whose
// hpc store holds such a value gets one warning (daemon log, `run.warning` event, the record's `warnings`) once its
// log shows an older Nextflow, naming the secrets and never showing a value.
import t from 'tap'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { SecretValue } from '../../daemon/secret-value.js'
import { dollarWarning, DOLLAR_WARNING } from '../../daemon/runs/run-rules.js'
import { escapesDollar } from '../../daemon/nextflow/log-markers.js'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import { caller } from '../helpers/runs.js'
import { waitFor, watchFixture } from '../helpers/watch.js'

t.test('escapesDollar: by version number, edge releases included', async t => {
  const table: Array<[string, boolean | null]> = [
    ['24.04.2', true], ['24.04.6', true], ['24.05.0-edge', true], ['25.10.0', true], ['26.08.0-edge', true], ['100.01.0', true],
    ['24.04.1', false], ['24.04.0', false], ['24.04.0-edge', false], ['24.03.0-edge', false], ['23.10.1', false], ['22.10.7', false], ['0.32.0', false],
    ['soon', null], ['24.04', null], ['', null]
  ]
  for (const [v, want] of table) t.equal(escapesDollar(v), want, v)
})

t.test('dollarWarning: only with `$` values, an older Nextflow, and once', async t => {
  t.equal(dollarWarning({ dollarNames: ['A'] }, null), null, 'version not known yet')
  t.equal(dollarWarning({}, '23.10.1'), null, 'no value with $')
  t.equal(dollarWarning({ dollarNames: ['A'] }, '24.04.2'), null, 'a Nextflow that escapes it')
  t.equal(dollarWarning({ dollarNames: ['A'], warnings: [DOLLAR_WARNING] }, '23.10.1'), null, 'already given')
  const w = dollarWarning({ dollarNames: ['A', 'B'] }, '23.10.1')
  t.equal(w?.code, DOLLAR_WARNING)
  t.same(w?.names, ['A', 'B'])
})

for (const [version, warned] of [['23.10.1', true], ['24.04.2', false]] as const) {
  t.test(`a run on Nextflow ${version} with a \`$\` value: ${warned ? 'warned once, by name' : 'no warning'}`, async t => {
    const canary = 'pa$$word-canary-7f3a'
    const f = await watchFixture(t, { watch: [{}] })
    await f.store.createSecret('user:root', 'DB_PASS', new SecretValue(canary), 'root')
    await f.store.createSecret('user:root', 'PLAIN', new SecretValue('no-dollar-here'), 'root')
    const dir = join(f.root, 'proj')
    mkdirSync(dir)
    const run = await f.runs.create(caller(), { mode: 'arm', launchDir: dir, targets: ['hpc'] })
    t.same(f.ledger.get(run.runId)?.dollarNames, ['DB_PASS'], 'the names whose value holds $, recorded at provisioning')
    const nf = await startFakeNextflow({ launchDir: dir, sessionId: run.sessionId, version })
    t.teardown(() => nf.close())
    await waitFor('running', () => f.ledger.get(run.runId)?.state === 'running')
    // several monitor passes read the same log: still one warning
    for (let i = 0; i < 3; i++) await f.monitor.tick()
    const warnings = f.events.filter(e => e.type === 'run.warning' && e.runId === run.runId)
    t.equal(warnings.length, warned ? 1 : 0)
    t.same(f.ledger.get(run.runId)?.warnings ?? [], warned ? [DOLLAR_WARNING] : [])
    if (warned) {
      t.same(warnings[0]!.names, ['DB_PASS'])
      t.equal(warnings[0]!.state, DOLLAR_WARNING)
    }
    t.notOk(JSON.stringify(f.events).includes(canary), 'no value in any event')
    t.notOk(JSON.stringify(f.ledger.all()).includes(canary), 'no value in the ledger')
    await nf.finish('OK')
    await waitFor('the end', () => f.ledger.get(run.runId)?.state === 'completed')
  })
}
