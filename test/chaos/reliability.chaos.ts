// The reliability suite (`npm run test:chaos`): crash anywhere, AWS faults, API fuzz, disk full and load, one
// section after another against real daemons, moto and real users, then a leak scan of everything they produced
// for every canary value they used. Sections run in sequence so that their timing and load do not mix.
// NF_CHAOS_SEED=<n> replays a run's random choices; NF_CHAOS_ONLY=crash,fuzz runs some sections alone.
import t from 'tap'
import { ensureBuilt } from '../helpers/daemon.js'
import { startMoto, type Moto } from '../helpers/moto.js'
import { ensureUsers } from '../helpers/users.js'
import { Harness } from './harness.js'
import { crashSection } from './crash.js'
import { awsFaultsSection } from './aws-faults.js'
import { fuzzSection } from './fuzz.js'
import { diskFullSection } from './disk-full.js'
import { loadSection } from './load.js'
import { hostileSection } from './hostile.js'

t.setTimeout(600_000)
const seed = Number(process.env.NF_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31))
t.comment(`seed ${seed} (replay with NF_CHAOS_SEED=${seed})`)
const only = new Set((process.env.NF_CHAOS_ONLY ?? '').split(',').filter(s => s !== ''))
const wanted = (name: string): boolean => only.size === 0 || only.has(name)

ensureBuilt()
ensureUsers(['alice', 'bob', 'carol'])
const h = new Harness(t, seed)
h.startCmdlineSnapshots()
// moto is given three tries: on a loaded machine its 20 s start-up deadline can pass.
async function motoWithRetries (): Promise<Moto> {
  for (let i = 1; ; i++) {
    try {
      return await startMoto(t)
    } catch (err) {
      if (i === 3) throw err
    }
  }
}
const moto = await motoWithRetries()

if (wanted('crash')) await t.test('crash anywhere: runs under random SIGKILLs and restarts', async t => { await crashSection(t, h, moto) })
if (wanted('aws')) await t.test('AWS faults: 30% throttling, 5xx, latency, dropped connections', async t => { await awsFaultsSection(t, h, moto) })
if (wanted('fuzz')) await t.test('API fuzz over the real socket', async t => { await fuzzSection(t, h) })
if (wanted('disk')) await t.test('disk full: the state dir on a tiny tmpfs', async t => { await diskFullSection(t, h) })
if (wanted('load')) await t.test('load: 50 runs by 3 users while secrets are updated', async t => { await loadSection(t, h) })
if (wanted('hostile')) await t.test('hostile neighbour: bob at every limit at once while alice and carol work', async t => { await hostileSection(t, h) })

await t.test('leak scan: no canary anywhere it must not be', async t => {
  // The scan itself can fail: a canary planted in a source of a scratch harness is found, whatever wraps it.
  const control = new Harness(t, seed)
  const planted = control.canary('control')
  control.addText('control', `{"msg":"x","value":${JSON.stringify(planted)}}`)
  t.same(control.scan().map(l => l.source), ['control'], 'a planted canary is found')
  const leaks = h.scan()
  t.ok(h.figures.canariesScanned > 0, 'the suite used canaries')
  t.ok(h.eventCount > 0, `events were captured (${h.eventCount})`)
  t.ok(h.cmdlineCount > 0, `argv snapshots were taken (${h.cmdlineCount} distinct)`)
  t.same(leaks, [], 'no canary in logs, audit logs, ledgers, events, CLI output or argv')
})

const f = h.figures
t.comment(`reliability figures: runs ${f.runs}, kills ${f.kills}, faults injected ${f.faultsInjected}, requests fuzzed ${f.requestsFuzzed}, ` +
  `canaries scanned ${f.canariesScanned}, leaks found ${f.leaksFound} (seed ${seed})`)
