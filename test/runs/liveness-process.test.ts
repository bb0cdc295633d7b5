import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmod, copyFile, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isProcessAlive, parseProcStat, processStartTime } from '../../daemon/runs/liveness/process.js'

// 52 fields as the kernel writes them; field 22 (starttime) is 8123456
const tail = 'S 1 731 731 0 -1 4194560 25011 0 3 0 120 35 0 0 20 0 43 0 8123456 5876543488 61234 18446744073709551615 1 1 0 0 0 0 0 4096 17103 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0'

t.test('parseProcStat table', async (t) => {
  const cases: Array<{ name: string, text: string, want: { state: string, startTime: number } | null }> = [
    { name: 'plain comm', text: `731 (java) ${tail}\n`, want: { state: 'S', startTime: 8123456 } },
    { name: 'comm with spaces', text: `731 (Task monitor 2) ${tail}`, want: { state: 'S', startTime: 8123456 } },
    { name: 'comm with parens and a fake field list', text: `731 (a) R 1 2 3 (b)) ${tail}`, want: { state: 'S', startTime: 8123456 } },
    { name: 'zombie', text: `731 (java) Z${tail.slice(1)}`, want: { state: 'Z', startTime: 8123456 } },
    { name: 'too few fields', text: '731 (java) S 1 731', want: null },
    { name: 'no parens', text: '731 java S 1 2 3', want: null },
    { name: 'empty', text: '', want: null },
    { name: 'non-numeric start time', text: `731 (java) ${tail.replace('8123456', 'x')}`, want: null }
  ]
  for (const c of cases) t.same(parseProcStat(c.text), c.want, c.name)
})

t.test('a live child, then the same pid after it exits', async (t) => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' })
  t.teardown(() => { child.kill('SIGKILL') })
  await once(child, 'spawn')
  const pid = child.pid as number
  const start = await processStartTime(pid)
  t.type(start, 'number')
  t.equal(await isProcessAlive(pid, start), true, 'alive with its own start time')
  t.equal(await isProcessAlive(pid, null), true, 'alive when the start time is unknown')
  t.equal(await isProcessAlive(pid, (start as number) + 1), false, 'another start time is another process')
  child.kill('SIGKILL')
  await once(child, 'exit')
  t.equal(await isProcessAlive(pid, start), false, 'dead after exit')
  t.equal(await processStartTime(pid), null)
})

t.test('comm holding spaces and parens is read right from /proc', async (t) => {
  // The kernel takes comm from the executable's name: run `sleep` under an awkward name.
  const dir = await mkdtemp(join(tmpdir(), 'nfs-proc-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const odd = join(dir, 'a) b (c')
  await copyFile('/bin/sleep', odd)
  await chmod(odd, 0o755)
  const child = spawn(odd, ['30'], { stdio: 'ignore' })
  t.teardown(() => { child.kill('SIGKILL') })
  await once(child, 'spawn')
  const raw = await readFile(`/proc/${child.pid as number}/stat`, 'utf8')
  t.match(raw, /\(a\) b \(c\)/, 'the kernel wrote the awkward comm')
  const start = await processStartTime(child.pid as number)
  const self = await processStartTime(process.pid)
  t.type(start, 'number')
  t.ok((start as number) >= (self as number), 'the child started after this test process')
  t.equal(await isProcessAlive(child.pid as number, start), true)
})

t.test('a zombie counts as dead', async (t) => {
  // A shell that forks `true` and then execs sleep: the exec'd sleep never reaps `true`, which stays a zombie.
  const child = spawn('sh', ['-c', 'true & exec sleep 30'], { stdio: 'ignore' })
  t.teardown(() => { child.kill('SIGKILL') })
  await once(child, 'spawn')
  let zombie: number | null = null
  for (let i = 0; i < 100 && zombie === null; i++) {
    const children = await readFile(`/proc/${child.pid as number}/task/${child.pid as number}/children`, 'utf8').catch(() => '')
    for (const p of children.trim().split(/\s+/).filter(Boolean).map(Number)) {
      const st = parseProcStat(await readFile(`/proc/${p}/stat`, 'utf8').catch(() => ''))
      if (st?.state === 'Z') zombie = p
    }
    if (zombie === null) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const found = zombie as number | null
  t.type(found, 'number', 'a zombie exists')
  if (found !== null) t.equal(await isProcessAlive(found, null), false)
})

t.test('invalid pids are dead, never an error', async (t) => {
  for (const pid of [0, -1, 1.5, Number.NaN, 2 ** 60]) {
    t.equal(await isProcessAlive(pid, null), false, String(pid))
    t.equal(await processStartTime(pid), null, String(pid))
  }
})
