// Dependencies agree with our `engines`: every package in the lockfile (production and dev alike: CI runs both on
// the oldest Node we promise) must admit every Node version our range admits.
import t from 'tap'
import { enginesMismatches, readLock } from '../../scripts/ci/check-engines.mjs'
import { ROOT } from '../helpers/daemon.js'

t.test('enginesMismatches: a range that leaves out part of ours is reported', async (t) => {
  const ours = '^20.19.0 || >=22.12.0'
  const cases: Array<[string, string | undefined, boolean]> = [
    [ours, '>=22', true], // cookie 2
    [ours, '>=18', false],
    [ours, '>=20.19', false],
    [ours, '^20.19.0 || ^22.12.0 || >=23', false], // yargs 18: a union that covers ours
    [ours, '^20.17.0 || >=22.9.0', false],
    [ours, '20 || >=22', false],
    [ours, '^20.19.0 || ^22.12.0', true], // leaves out 23 and later
    [ours, '>=20.19 <24', true],
    [ours, '^20.20.0 || >=22.12.0', true], // leaves out 20.19
    ['>=20.19', '20 || >=22', true], // leaves out 21
    [ours, 'not a range', true],
    [ours, undefined, false]
  ]
  for (const [mine, node, bad] of cases) {
    const found = enginesMismatches(mine, { '': {}, 'node_modules/x': { version: '1.0.0', ...(node === undefined ? {} : { engines: { node } }) } })
    t.equal(found.length > 0, bad, `${mine} against ${String(node)}`)
  }
  t.same(enginesMismatches(ours, { 'node_modules/y': { engines: ['node >= 0.4'] } }), [], 'the old array form is ignored')
})

t.test('the lockfile agrees with package.json engines', async (t) => {
  const { ours, lockRoot, packages } = readLock(ROOT)
  t.equal(lockRoot.engines?.node, ours, 'the lockfile is in step with package.json')
  t.same(enginesMismatches(ours, packages), [], 'no package asks for a newer Node than we promise (fix with an override in package.json)')
})
