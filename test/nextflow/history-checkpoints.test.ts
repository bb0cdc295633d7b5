// The run monitor reads a long history from a checkpoint near its end (history-checkpoints.ts, issue 18). What it
// finds must be what a read of the whole file finds, whatever Nextflow or the user does to the file between two
// scans: lines appended, statuses rewritten in place anywhere, lines deleted, the file truncated or replaced. Then
// the bounds of the filter and the LRU, and an attack: a history others may write never gets a checkpoint, so a
// neighbour who edits lines ahead of one (keeping its guard bytes) cannot shift a run's mark.
import t from 'tap'
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, appendFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { matchHistory, observeRun } from '../../daemon/runs/observe.js'
import { parseHistory, type HistoryRecord } from '../../daemon/nextflow/history.js'
import { scanHistory } from '../../daemon/nextflow/history-file.js'
import { CHECKPOINT_LAG, CHECKPOINT_RECORDS_MAX, NameFilter, createCheckpoints, nameHashes, type Checkpoints } from '../../daemon/nextflow/history-checkpoints.js'
import { ensureUsers } from '../helpers/users.js'
import { prng } from '../helpers/prng.js'

interface Query { runName: string | null, sessionId: string, historyMark: number | null }

/** The monitor's own look at a run (observe.ts), over the given checkpoints: its history line and the count */
async function match (dir: string, uid: number, q: Query, checkpoints: Checkpoints): Promise<{ count: number, history: HistoryRecord | null }> {
  const obs = await observeRun({ launchDir: dir, uid, ...q }, checkpoints)
  return { count: obs.historyCount, history: obs.history }
}

/** What a read of the whole text finds (the pure parser; no line here is over MAX_LINE) */
function reference (text: string, q: Query): { count: number, history: HistoryRecord | null } {
  const { records } = parseHistory(text)
  return { count: records.length, history: matchHistory(records, q) }
}

function launchDir (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-checkpoints-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(join(dir, '.nextflow'))
  writeFileSync(join(dir, '.nextflow', 'history'), '', { mode: 0o644 })
  return dir
}

let serial = 0
function line (random: () => number, sessionId: string, status = '-'): string {
  const runName = `run_${serial++}_${Math.floor(random() * 1e6)}`
  const cmd = random() < 0.1 ? 'nextflow run nf-core/sarek --outdir résultats -profile 京都' : `nextflow run nf-core/rnaseq -r 3.${Math.floor(random() * 20)} -profile slurm -resume`
  return `2026-12-0${1 + Math.floor(random() * 9)} 10:11:12\t${status === '-' ? '-' : '4m 2s'}\t${runName}\t${status}\tabc1234567\t${sessionId}\t${cmd}\n`
}

t.test('from a checkpoint a scan finds what a whole read finds, through 400 random edits (3 seeds)', async t => {
  const uid = process.getuid!()
  for (const seed of [1, 2, 3]) {
    const random = prng(seed)
    const dir = launchDir(t)
    const file = join(dir, '.nextflow', 'history')
    const shared = createCheckpoints()
    const sessions = Array.from({ length: 30 }, () => randomUUID())
    let text = ''
    for (let i = 0; i < 400; i++) text += line(random, sessions[Math.floor(random() * sessions.length)]!, random() < 0.9 ? 'OK' : '-')
    writeFileSync(file, text)
    let fromCheckpoint = 0
    for (let step = 0; step < 400; step++) {
      const lines = text.split('\n').slice(0, -1)
      const r = random()
      if (r < 0.45) {
        // a start: a new line, a fresh session or a -resume of an old one
        const sid = random() < 0.5 ? randomUUID() : sessions[Math.floor(random() * sessions.length)]!
        sessions.push(sid)
        appendFileSync(file, line(random, sid))
      } else if (r < 0.75) {
        // Nextflow's end: one line's status set, the whole file truncated and written again (same inode)
        const i = random() < 0.7 ? lines.length - 1 - Math.floor(random() * 5) : Math.floor(random() * lines.length)
        const cols = lines[Math.max(0, i)]!.split('\t')
        if (cols[3] === '-') { cols[1] = `${1 + Math.floor(random() * 59)}m ${Math.floor(random() * 59)}s`; cols[3] = random() < 0.8 ? 'OK' : 'ERR' }
        lines[Math.max(0, i)] = cols.join('\t')
        writeFileSync(file, lines.join('\n') + '\n')
      } else if (r < 0.85) {
        // a line deleted anywhere (a hand edit, a clean)
        lines.splice(Math.floor(random() * lines.length), 1)
        writeFileSync(file, lines.join('\n') + '\n')
      } else if (r < 0.9) {
        // junk and a half-written last line
        appendFileSync(file, random() < 0.5 ? 'not a history line\n' : '2026-12-04 10:11:12\t-\tcut_line')
        if (random() < 0.5) writeFileSync(file, readFileSync(file, 'utf8').replace(/[^\n]*$/, ''))
      } else if (r < 0.95) {
        // truncated to its first lines
        writeFileSync(file, lines.slice(0, Math.floor(lines.length * (0.5 + random() / 2))).join('\n') + '\n')
      } else {
        // replaced by rename (another inode), same text plus one line
        writeFileSync(`${file}.new`, readFileSync(file, 'utf8') + line(random, randomUUID()))
        renameSync(`${file}.new`, file)
      }
      text = readFileSync(file, 'utf8')
      const recs = parseHistory(text).records
      const queries: Query[] = [
        { runName: null, sessionId: randomUUID(), historyMark: recs.length },
        { runName: null, sessionId: sessions[Math.floor(random() * sessions.length)]!, historyMark: null },
        { runName: recs.at(-1 - Math.floor(random() * 3))?.runName ?? null, sessionId: randomUUID(), historyMark: Math.max(0, recs.length - 2) },
        { runName: recs[Math.floor(random() * recs.length)]?.runName ?? null, sessionId: randomUUID(), historyMark: Math.floor(random() * recs.length) }
      ]
      for (const q of queries) {
        const before = shared.size
        const got = await match(dir, uid, q, shared)
        const want = reference(text, q)
        if (got.count !== want.count || got.history?.index !== want.history?.index || got.history?.runName !== want.history?.runName || got.history?.status !== want.history?.status) {
          t.fail(`seed ${seed} step ${step}: ${JSON.stringify({ q, got, want })}`)
          return
        }
        if (before > 0) fromCheckpoint++
      }
    }
    t.pass(`seed ${seed}: 1,600 scans agree with the whole read, ${fromCheckpoint} of them with a checkpoint at hand`)
    t.ok(fromCheckpoint > 300, 'a good share of them had one (the edits here reset it far more often than Nextflow does)')
  }
})

t.test('a scan from a checkpoint does not read what is before it (a same-length edit there goes unseen until the next whole read)', async t => {
  // The user's own file: what this shows is that the part before the checkpoint is really skipped, the saving.
  const uid = process.getuid!()
  const dir = launchDir(t)
  const file = join(dir, '.nextflow', 'history')
  const random = prng(9)
  let text = ''
  while (text.length < 4 * CHECKPOINT_LAG) text += line(random, randomUUID(), 'OK')
  writeFileSync(file, text)
  const cps = createCheckpoints()
  const mark = async (): Promise<number | undefined> => (await scanHistory(dir, uid, () => ({ visit: () => {}, enough: () => true }), cps))?.count
  const whole = parseHistory(text).records.length
  t.equal(await mark(), whole)
  t.equal(cps.size, 1, 'a checkpoint was taken')
  // The first line's UUID made invalid, same length: a whole read counts one less.
  writeFileSync(file, text.replace(/\t[0-9a-f]{8}-/, '\tzzzzzzzz-'))
  t.equal(await mark(), whole, 'from the checkpoint: the first line is not read')
  t.equal((await scanHistory(dir, uid, () => ({ visit: () => {} }), cps))?.count, whole - 1, 'a visitor without `enough` always reads whole')
})

t.test('a run far before the checkpoint, ended by Nextflow\'s rewrite of the whole file, is found as it is now', async t => {
  const uid = process.getuid!()
  const dir = launchDir(t)
  const file = join(dir, '.nextflow', 'history')
  const random = prng(11)
  const first = randomUUID()
  let text = line(random, first)
  while (text.length < 4 * CHECKPOINT_LAG) text += line(random, randomUUID(), 'OK')
  writeFileSync(file, text)
  const cps = createCheckpoints()
  await match(dir, uid, { runName: null, sessionId: randomUUID(), historyMark: null }, cps)
  t.equal(cps.size, 1)
  // Nextflow's end of the first run: `-` -> `OK`, the file written again.
  const ended = text.replace('\t-\t', '\t7m 1s\t').replace(`\t-\tabc1234567\t${first}`, `\tOK\tabc1234567\t${first}`)
  writeFileSync(file, ended)
  const got = await match(dir, uid, { runName: null, sessionId: first, historyMark: null }, cps)
  t.equal(got?.history?.index, 0)
  t.equal(got?.history?.status, 'OK', 'the first line as it is now')
  t.equal(got?.count, parseHistory(ended).records.length)
})

t.test('the name filter: no false negative, few false positives; the checkpoints stay within their bytes', async t => {
  const random = prng(21)
  const name = (): string => `name_${Math.floor(random() * 2 ** 32).toString(36)}_${Math.floor(random() * 2 ** 32).toString(36)}`
  const f = new NameFilter(10_000)
  const names = Array.from({ length: 10_000 }, name)
  t.ok(f.addHashes(names.flatMap(n => nameHashes(n))))
  t.ok(names.every(n => f.mayHold(n)), 'every name added may be held')
  let fp = 0
  for (let i = 0; i < 10_000; i++) if (f.mayHold(`other_${name()}`)) fp++
  t.ok(fp < 200, `${fp} false positives in 10,000 (under 2 %)`)
  t.notOk(f.addHashes(nameHashes('one more')), 'past its capacity it refuses')
  t.equal(f.clone().mayHold(names[0]!), true)

  const cps = createCheckpoints(100_000)
  for (let i = 0; i < 50; i++) {
    cps.set(`k${i}`, { dev: 1, ino: i, offset: 100, count: 1, guard: Buffer.alloc(64), names: new NameFilter(4096) })
  }
  t.ok(cps.calculatedSize <= 100_000, `${cps.calculatedSize} bytes`)
  t.ok(cps.size < 50 && cps.size > 0)
  t.ok(cps.get('k49') !== undefined, 'the newest is kept')
  t.equal(cps.get('k0'), undefined, 'the oldest went first')
})

t.test('a history with more records than a checkpoint may hold: read whole, right, and nothing kept (what a scan gathers is bounded)', async t => {
  const uid = process.getuid!()
  const dir = launchDir(t)
  // the shortest lines Nextflow's parser takes, a user's to write: 64 bytes a record
  const short = (i: number): string => `1-01-01 00:00:00\t-\tr${i.toString(36).padStart(4, '0')}\t-\ta\t${'0'.repeat(8)}-0000-4000-8000-${i.toString(16).padStart(12, '0')}\tx\n`
  const n = CHECKPOINT_RECORDS_MAX + 1000
  writeFileSync(join(dir, '.nextflow', 'history'), Array.from({ length: n }, (_, i) => short(i)).join(''))
  const cps = createCheckpoints()
  t.equal((await scanHistory(dir, uid, () => ({ visit: () => {}, enough: () => true }), cps))?.count, n, 'every record counted')
  t.equal(cps.size, 0, 'no checkpoint past CHECKPOINT_RECORDS_MAX records')
})

t.test('attack: a history others may write gets no checkpoint, so a neighbour\'s edit ahead of one cannot shift a mark', async t => {
  const [alice, mallory] = ensureUsers(['alice', 'mallory'])
  const dir = launchDir(t)
  chmodSync(dir, 0o755)
  const cache = join(dir, '.nextflow')
  const file = join(cache, 'history')
  const random = prng(13)
  let text = ''
  while (text.length < 4 * CHECKPOINT_LAG) text += line(random, randomUUID(), 'OK')
  writeFileSync(file, text)
  chownSync(cache, alice!.uid, alice!.gid)
  chownSync(file, alice!.uid, alice!.gid)
  // A shared project's history left writable by all (umask 000): read, but never trusted.
  chmodSync(file, 0o666)
  const cps = createCheckpoints()
  const q = { runName: null, sessionId: randomUUID(), historyMark: null }
  t.equal((await match(dir, alice!.uid, q, cps)).count, parseHistory(text).records.length)
  t.equal(cps.size, 0, 'no checkpoint for a history anyone may write')
  // mallory, as herself, makes the first line invalid without changing a byte near the end.
  execFileSync('runuser', ['-u', mallory!.name, '--', 'sh', '-c', 't=$(sed "1s/\t[0-9a-f]\\{8\\}-/\tzzzzzzzz-/" "$0") && printf "%s\n" "$t" > "$0"', file])
  const now = readFileSync(file, 'utf8')
  t.not(now, text, 'mallory changed the file')
  const got = await match(dir, alice!.uid, q, cps)
  t.equal(got.count, parseHistory(now).records.length, 'the count is the file\'s as it is now')
  t.equal(cps.size, 0)
})
