// NF_SECRETSD_FAILPOINTS (daemon/failpoints.ts), read once at a process's start: `name` kills at that point, `name=ms`
// holds an asynchronous point that long, and a hold that is not a number arms nothing (a typo must not turn a hold
// into a kill). Each case in a child node of its own, on the built module (dist/), as the daemon reads it.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const MODULE = join(fileURLToPath(new URL('../..', import.meta.url)), 'dist/daemon/failpoints.js')

/** Run `body` (an async function's body with `fp`, the module) in a child with the variable set; its exit and stdout. */
function child (failpoints: string, body: string): { signal: NodeJS.Signals | null, status: number | null, out: string } {
  const script = `const fp = await import(${JSON.stringify(MODULE)}); ${body}`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, NF_SECRETSD_FAILPOINTS: failpoints } })
  return { signal: r.signal, status: r.status, out: r.stdout.trim() }
}

t.test('a bare name kills at that point, synchronous or not', async t => {
  t.equal(child('revoke.after-target', "console.log('before'); fp.failpoint('revoke.after-target'); console.log('after')").signal, 'SIGKILL')
  const r = child('ledger.decided-before-commit', "fp.failpointPause('ledger.decided-before-commit'); console.log('after')")
  t.equal(r.signal, 'SIGKILL', 'an asynchronous point armed to kill kills')
  t.equal(r.out, '')
})

t.test('name=ms holds that long and never kills; a synchronous point of the same name passes', async t => {
  const r = child('ledger.decided-before-commit=200', `
    const t0 = Date.now()
    const held = fp.failpointPause('ledger.decided-before-commit')
    fp.failpoint('ledger.decided-before-commit')
    await held
    console.log(held instanceof Promise, Date.now() - t0 >= 190)`)
  t.same([r.signal, r.status, r.out], [null, 0, 'true true'])
})

t.test('a hold that is not a number, or a point not named, arms nothing', async t => {
  const r = child('ledger.decided-before-commit=soon, ,revoke.before-target=-5', `
    console.log(fp.failpointPause('ledger.decided-before-commit'), fp.failpointPause('revoke.before-target'), fp.failpointPause('run.after-intent'))
    fp.failpoint('ledger.decided-before-commit'); fp.failpoint('revoke.before-target'); console.log('alive')`)
  t.same([r.signal, r.status, r.out], [null, 0, 'null null null\nalive'])
})
