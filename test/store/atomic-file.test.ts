import t from 'tap'
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { AtomicJsonFile, readJsonFile, sweepTempFiles, writeFileAtomic } from '../../daemon/store/atomic-file.js'
import { sha256File, tempDir, tinyTmpfs } from './helpers.js'
import { whyNotRoot } from '../helpers/requires.js'

t.test('round trip, exact mode, no temp file left, dir untouched', async t => {
  const dir = tempDir(t)
  const dirMode = statSync(dir).mode
  const file = join(dir, 'store.json')
  const a = new AtomicJsonFile<{ x: number }>(file, { mode: 0o600 })
  t.equal(await a.read(), null, 'a missing file reads as null')
  await a.write({ x: 1 })
  t.same(await a.read(), { x: 1 })
  t.equal(statSync(file).mode & 0o777, 0o600)
  t.same(readdirSync(dir), ['store.json'], 'only the target remains')
  t.equal(statSync(dir).mode, dirMode)

  const wide = join(dir, 'wide.txt')
  const old = process.umask(0o077)
  t.teardown(() => process.umask(old))
  await writeFileAtomic(wide, 'hello', 0o640)
  t.equal(statSync(wide).mode & 0o777, 0o640, 'mode applied exactly, not filtered by the umask')
  t.equal(readFileSync(wide, 'utf8'), 'hello')
})

t.test('invalid JSON throws NFS_ERR_STORE_UNREADABLE and the file is not modified', async t => {
  const file = join(tempDir(t), 'store.json')
  writeFileSync(file, '{"x": 1', { mode: 0o600 })
  const before = sha256File(file)
  const a = new AtomicJsonFile(file, { mode: 0o600 })
  await t.rejects(a.read(), { code: 'NFS_ERR_STORE_UNREADABLE' })
  await t.rejects(readJsonFile(file), { code: 'NFS_ERR_STORE_UNREADABLE' })
  t.equal(sha256File(file), before)
})

t.test('noClobber refuses an existing file and leaves no temp', async t => {
  const dir = tempDir(t)
  const file = join(dir, 'k')
  await writeFileAtomic(file, 'one', 0o600, { noClobber: true })
  const err = await writeFileAtomic(file, 'two', 0o600, { noClobber: true }).catch(e => e)
  t.equal(err.code, 'NFS_ERR_STORAGE')
  t.equal(err.cause.code, 'EEXIST')
  t.equal(readFileSync(file, 'utf8'), 'one')
  t.same(readdirSync(dir), ['k'])
})

t.test('concurrent writes coalesce: all settle, the newest data wins', async t => {
  const file = join(tempDir(t), 'ledger.json')
  const a = new AtomicJsonFile<{ n: number }>(file, { mode: 0o600 })
  await Promise.all(Array.from({ length: 50 }, async (_, n) => { await a.write({ n }) }))
  t.same(await a.read(), { n: 49 })
  await a.flush()
  t.same(readdirSync(join(file, '..')), ['ledger.json'])
})

t.test('ENOSPC gives NFS_ERR_STORAGE, the old file stays intact, no temp left', { skip: whyNotRoot() }, async t => { // a tmpfs mount
  const dir = tinyTmpfs(t, '64k')
  const file = join(dir, 'store.json')
  const a = new AtomicJsonFile<{ fill: string }>(file, { mode: 0o600 })
  await a.write({ fill: 'x'.repeat(1000) })
  const before = sha256File(file)
  const err = await a.write({ fill: 'y'.repeat(200 * 1024) }).catch(e => e)
  t.equal(err.code, 'NFS_ERR_STORAGE')
  t.equal(err.cause?.code, 'ENOSPC')
  t.equal(sha256File(file), before)
  t.same(await a.read(), { fill: 'x'.repeat(1000) })
  t.same(readdirSync(dir), ['store.json'])
  await a.write({ fill: 'z' })
  t.same(await a.read(), { fill: 'z' }, 'a later write that fits succeeds')
})

t.test('SIGKILL mid-write: the file is always the old or the new document, never partial', async t => {
  const dir = tempDir(t)
  const check = (file: string): void => {
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { gen: string, fill: string }
    if (!['a', 'b'].includes(doc.gen) || doc.fill !== doc.gen.repeat(512 * 1024)) throw new Error('partial document')
  }
  // Three writers on three files at once (each child pays the TypeScript loader's start-up once), each killed
  // after a different number of writes and a different delay, so the kills land at different points of a write.
  const round = async (i: number): Promise<void> => {
    const file = join(dir, `store${i}.json`)
    const child = fork(join(import.meta.dirname, 'fixtures', 'atomic-writer.ts'), [file], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
    t.teardown(() => { child.kill('SIGKILL') })
    const exited = once(child, 'exit')
    const seen = { writes: 0 } // the writer's count, as its messages report it
    child.on('message', (m: { writes: number }) => { seen.writes = m.writes })
    while (seen.writes < 2 + i) {
      await new Promise(resolve => setTimeout(resolve, 20))
      if (existsSync(file)) check(file)
    }
    await new Promise(resolve => setTimeout(resolve, 7 * i))
    child.kill('SIGKILL')
    await exited
    t.doesNotThrow(() => { check(file) }, `writer ${i}: intact after the kill`)
    // The killed writer may have left its temp file; a sweep removes those of dead pids.
    await sweepTempFiles(file)
  }
  await Promise.all([0, 1, 2].map(round))
  t.same(readdirSync(dir).sort(), ['store0.json', 'store1.json', 'store2.json'])
})

t.test('syncAlong goes out after the data is written and before the rename; its failure is not the write\'s', async t => {
  const dir = tempDir(t)
  const path = join(dir, 'runs.json')
  writeFileSync(path, 'old\n')
  const seen: Array<{ target: string, temps: string[] }> = []
  await writeFileAtomic(path, 'new\n', 0o600, {
    syncAlong: async () => {
      const temps = readdirSync(dir).filter(n => n.endsWith('.tmp'))
      seen.push({ target: readFileSync(path, 'utf8'), temps: temps.map(n => readFileSync(join(dir, n), 'utf8')) })
    }
  })
  t.same(seen, [{ target: 'old\n', temps: ['new\n'] }])
  await writeFileAtomic(path, 'newer\n', 0o600, { syncAlong: async () => { throw new Error('EIO elsewhere') } })
  t.equal(readFileSync(path, 'utf8'), 'newer\n')
  t.same(readdirSync(dir).filter(n => n.endsWith('.tmp')), [])
})
