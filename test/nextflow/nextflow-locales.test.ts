// Both parsers over the JDK's own dates for 83 JVM default locales and 17 time zones (test/fixtures/nextflow-locales,
// written by Gen.java from Nextflow's format strings): every marker of a log and every history line must be read
// whatever the month names, the digits, the calendar and the zone.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { isDeepStrictEqual } from 'node:util'
import { asciiDigits, isLeftover, LEFTOVER_MS, parseHistory } from '../../daemon/nextflow/history.js'
import { parseLogMarkers } from '../../daemon/nextflow/log-markers.js'

interface Case { locale: string, zone: string, epochMs: number, log: string, logLegacy: string, history: string }
interface Formats { processLine: string, cases: Case[] }

const formats = JSON.parse(readFileSync(new URL('../fixtures/nextflow-locales/formats.json', import.meta.url), 'utf8')) as Formats

const SESSION = '0b6e4c1a-3f2d-4e8b-9a7c-1d2e3f4a5b6c'

/** A log in the current (26.x) marker order (see /work/shared/nextflow/NOTES.md 2.3), every entry stamped `date`. */
function logText (date: string, processLine: string, version: string): string {
  const e = (thread: string, level: string, logger: string, msg: string): string => `${date} [${thread}] ${level.padEnd(5)} ${logger} - ${msg}\n`
  return e('main', 'DEBUG', 'nextflow.cli.Launcher', '$> nextflow run main.nf -profile test') +
    e('main', 'INFO', 'nextflow.cli.CmdRun', `N E X T F L O W  ~  version ${version}`) +
    e('main', 'INFO', 'nextflow.cli.CmdRun', 'Launching `main.nf` [cranky_pasteur] - revision: 5f2c9a0e1b') +
    e('main', 'DEBUG', 'nextflow.Session', `Session UUID: ${SESSION}`) +
    e('main', 'DEBUG', 'nextflow.Session', 'Run name: cranky_pasteur') +
    e('main', 'DEBUG', 'nextflow.cli.CmdRun', '') +
    `  Version: ${version} build 5\n  System: Linux 6.1.0\n${processLine}\n  CPUs: 2 - Mem: 2 GB (1 GB) - Swap: 0 (0)\n` +
    e('main', 'DEBUG', 'nextflow.Session', 'Session start') +
    e('Task monitor', 'DEBUG', 'nextflow.Session', 'Session aborted -- Cause: SIGTERM') +
    e('main', 'DEBUG', 'nextflow.script.ScriptRunner', '> Execution complete -- Goodbye')
}

/** `MM-dd HH:mm:ss` of an instant in a zone: the part of the history's timestamp every calendar here shares. */
function wallClock (epochMs: number, zone: string): string {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-US', {
    timeZone: zone, month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23'
  }).formatToParts(new Date(epochMs)).map(p => [p.type, p.value]))
  return `${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`
}

t.test('the fixture is wide: non-ASCII digits, non-Gregorian years, months with spaces and hyphens', async t => {
  t.ok(formats.cases.length >= 900)
  t.ok(new Set(formats.cases.map(c => c.zone)).size >= 15, 'many zones')
  t.ok(formats.cases.some(c => /[٠-٩]/.test(c.history)), 'Arabic-Indic digits')
  t.ok(formats.cases.some(c => /[۰-۹]/.test(c.history)), 'Persian digits')
  t.ok(formats.cases.some(c => /[๐-๙]/.test(c.logLegacy)), 'Thai digits in a logback 1.2 log')
  t.ok(formats.cases.some(c => c.history.startsWith('2569-')), 'a Buddhist year')
  t.ok(formats.cases.some(c => /^\d-/.test(c.history)), 'a Japanese era year')
  t.ok(formats.cases.some(c => c.log.startsWith('Sept-')), 'en-GB Sept')
  t.ok(formats.cases.some(c => c.log.startsWith('Okt.-')), 'de Okt.')
  t.ok(formats.cases.some(c => c.log.startsWith('févr.-')), 'fr févr.')
  t.ok(formats.cases.some(c => c.log.startsWith('12月-')), 'ja/zh 12月')
  t.ok(formats.cases.some(c => /^\S+ \S+-\d/.test(c.log)), 'a month holding a space')
  t.ok(formats.cases.some(c => /^\d+-р сар-/.test(c.log)), 'a month holding a hyphen (mn)')
  t.match(formats.processLine, /^ {2}Process: \d+@localhost null$/, 'the JDK on a host whose name does not resolve')
})

t.test('every log marker is read in every locale, zone and logback generation', async t => {
  let checked = 0
  for (const c of formats.cases) {
    for (const [kind, date] of [['log', c.log], ['logLegacy', c.logLegacy]] as const) {
      const m = parseLogMarkers(logText(date, '  Process: 48213@login01 [10.0.0.5]', '23.04.1'))
      const want = {
        sessionId: SESSION,
        runName: 'cranky_pasteur',
        pid: 48213,
        host: 'login01',
        ip: '10.0.0.5',
        version: '23.04.1',
        aborted: true,
        abortCause: 'SIGTERM',
        goodbye: true,
        launching: { script: 'main.nf', runName: 'cranky_pasteur', revision: '5f2c9a0e1b' }
      }
      if (!isDeepStrictEqual(m, want)) t.strictSame(m, want, `${c.locale} ${c.zone} ${kind}: ${date}`)
      else checked++
    }
  }
  t.equal(checked, formats.cases.length * 2, 'all of them')
})

t.test('the JDK\'s unresolved-host Process line keeps its pid', async t => {
  const pid = Number(/Process: (\d+)@/.exec(formats.processLine)![1])
  for (const c of formats.cases.filter((_, i) => i % 37 === 0)) {
    const m = parseLogMarkers(logText(c.log, formats.processLine, '24.10.0'))
    t.equal(m.pid, pid, c.locale)
    t.equal(m.host, 'localhost')
    t.equal(m.ip, undefined, 'no address')
  }
})

t.test('every history line is read in every locale and zone, its time kept as the JVM wrote it', async t => {
  const line = (ts: string, i: number, status: string): string =>
    [ts, status === '-' ? '-' : '2m 14s', `run_${i}`, status, '5f2c9a0e1b7d4c3a9e8f6d5c4b3a2910', SESSION, 'nextflow run main.nf'].join('\t')
  let wrong = 0
  for (const c of formats.cases) {
    const h = parseHistory(`${line(c.history, 1, 'OK')}\n${line(c.history, 2, '-')}\n`)
    const ok = h.records.length === 2 && !h.partial && h.records[1]!.status === 'running' &&
      h.records[0]!.timestamp === asciiDigits(c.history) && /^[0-9]+-[0-9-]+ [0-9:]+$/.test(h.records[0]!.timestamp) &&
      h.records[0]!.timestamp.slice(-14) === wallClock(c.epochMs, c.zone)
    if (!ok) {
      wrong++
      t.fail(`${c.locale} ${c.zone}: ${c.history} -> ${JSON.stringify(h.records[0] ?? null)}`)
    }
  }
  t.equal(wrong, 0)
})

t.test('a leftover is told by the file time alone, the same in every zone', async t => {
  const now = Date.UTC(2026, 11, 2, 12, 0, 0)
  const table: Array<[number, boolean, string]> = [
    [now, false, 'written now'],
    [now - LEFTOVER_MS, false, 'at the margin'],
    [now - LEFTOVER_MS - 1, true, 'just past it'],
    [now - 300 * 60_000, true, 'five hours ago'],
    [now + 90_000, false, 'a file server\'s clock ahead of ours']
  ]
  for (const [mtime, want, name] of table) t.equal(isLeftover(mtime, now), want, name)
  // The New York case of issue 14: a line written at 07:00 in New York is 12:00 UTC; its text is never read.
  const ny = formats.cases.find(c => c.zone === 'America/New_York')!
  t.equal(parseHistory(`${ny.history}\t-\ta_b\t-\tx\t${SESSION}\tnextflow run x\n`).records.length, 1)
  t.equal(isLeftover(now - 1000, now), false, 'fresh whatever the line says')
})

t.test('asciiDigits maps every script\'s digits', async t => {
  const table: Array<[string, string]> = [
    ['٢٠٢٦-١٠-١٤ ١٥:١٠:٠٧', '2026-10-14 15:10:07'],
    ['۲۰۲۶-۰۹-۰۸ ۱۴:۵۷:۰۷', '2026-09-08 14:57:07'],
    ['২০২৬', '2026'],
    ['२०२६', '2026'],
    ['๒๕๖๙', '2569'],
    ['၂၀၂၆', '2026'],
    ['𝟐𝟎𝟐𝟔 𝟗', '2026 9'],
    ['2026-12-02 abc', '2026-12-02 abc']
  ]
  for (const [input, want] of table) t.equal(asciiDigits(input), want, input)
})
