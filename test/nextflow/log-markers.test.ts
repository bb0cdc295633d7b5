import t from 'tap'
import { readFileSync } from 'node:fs'
import { parseLogMarkers, type LogMarkers } from '../../daemon/nextflow/log-markers.js'

const fixture = (name: string): string =>
  readFileSync(new URL(`../fixtures/nextflow/${name}`, import.meta.url), 'utf8')

t.test('fixture logs', async (t) => {
  const running: LogMarkers = {
    sessionId: 'c0ffee00-1234-4abc-8def-0123456789ab',
    runName: 'jolly_galois',
    pid: 731,
    host: 'hpc-login2',
    ip: '192.168.10.21',
    version: '26.08.0-edge',
    aborted: false,
    goodbye: false,
    launching: { script: 'https://github.com/nf-core/demo', runName: 'jolly_galois', revision: '0f9e8d7c6b' }
  }
  const cases: Array<{ file: string, want: LogMarkers }> = [
    { file: 'log-running.log', want: running },
    {
      file: 'log-success.log',
      want: {
        sessionId: '4e2a9c1d-7b3f-4a8e-9d6c-2f1e0b3a4c5d',
        runName: 'sleepy_noether',
        pid: 20417,
        host: 'ws-dave.example.org',
        version: '26.08.0-edge',
        aborted: false,
        goodbye: true,
        launching: { script: 'main.nf', runName: 'sleepy_noether', revision: 'a41c7e0b93' }
      }
    },
    {
      file: 'log-aborted.log',
      want: {
        sessionId: '91f3b2c4-0d5e-4f6a-8b7c-3e4d5f6a7b8c',
        runName: 'brave_hypatia',
        pid: 20988,
        host: 'ws-dave.example.org',
        ip: '10.1.2.3',
        version: '26.04.1',
        aborted: true,
        abortCause: 'Process `CHECK_INPUT (broken.csv)` terminated with an error exit status (1)',
        goodbye: true,
        launching: { script: 'main.nf', runName: 'brave_hypatia', revision: 'a41c7e0b93' }
      }
    },
    {
      file: 'log-legacy-dsl2.log',
      want: {
        sessionId: '5b7c9d1e-3f5a-4b7c-9d1e-3f5a7b9c1d3e',
        runName: 'witty_ramanujan',
        pid: 4411,
        host: 'node17',
        ip: '172.16.0.17',
        version: '24.10.4',
        aborted: true,
        abortCause: 'SIGTERM',
        goodbye: true,
        launching: { script: 'https://github.com/nextflow-io/hello', runName: 'witty_ramanujan', revision: '7588c46ffe' }
      }
    },
    // SIGKILL: the log stops mid-line, with no Goodbye: it says what it said while the run was running
    { file: 'log-killed.log', want: running }
  ]
  for (const c of cases) t.strictSame(parseLogMarkers(fixture(c.file)), c.want, c.file)
})

t.test('every prefix of a log parses to a subset of the whole', async (t) => {
  // The watcher reads a growing file; each read must be a consistent snapshot, never a wrong value.
  const text = fixture('log-aborted.log')
  const whole = parseLogMarkers(text)
  let mismatches = 0
  for (let i = 0; i <= text.length; i += 7) {
    const got = parseLogMarkers(text.slice(0, i)) as unknown as Record<string, unknown>
    for (const [k, v] of Object.entries(got)) {
      if (typeof v === 'boolean') continue
      if (JSON.stringify(v) !== JSON.stringify((whole as unknown as Record<string, unknown>)[k])) mismatches++
    }
  }
  t.equal(mismatches, 0)
})

t.test('line table', async (t) => {
  const ts = 'Mar-02 10:30:01.090 [main] DEBUG nextflow.Session - '
  const cmdRun = 'Mar-02 10:30:01.090 [main] DEBUG nextflow.cli.CmdRun - '
  const cases: Array<{ name: string, text: string, want: Partial<LogMarkers> }> = [
    { name: 'empty', text: '', want: {} },
    { name: 'cut run name is not taken', text: ts + 'Run name: jolly_ga', want: {} },
    { name: 'complete run name', text: ts + 'Run name: jolly_galois\n', want: { runName: 'jolly_galois' } },
    { name: 'cut uuid is not taken', text: ts + 'Session UUID: c0ffee00-1234\n', want: {} },
    { name: 'a Process: line with a timestamp is not the CmdInfo block', text: ts + '  Process: 12@h\n', want: {} },
    { name: 'first Process: wins', text: cmdRun + '\n  Process: 12@a [1.1.1.1]\n  Process: 13@b\n', want: { pid: 12, host: 'a', ip: '1.1.1.1' } },
    { name: 'a Process: line in another logger\'s message is not CmdInfo\'s', text: ts + 'ERROR ~ report\n  Process: 12@a [1.1.1.1]\n', want: {} },
    { name: 'an unresolved host (the JDK\'s `localhost`, address `null`)', text: cmdRun + '\n  Process: 4242@localhost null\n', want: { pid: 4242, host: 'localhost' } },
    { name: 'an abbreviated CmdRun logger', text: cmdRun.replace('nextflow.cli.CmdRun', 'n.cli.CmdRun') + '\n  Process: 7@h\n', want: { pid: 7, host: 'h' } },
    { name: 'CmdInfo\'s Version line', text: cmdRun + '\n  Version: 23.10.1 build 5891\n', want: { version: '23.10.1' } },
    { name: 'the banner\'s version wins over CmdInfo\'s', text: ts.replace('nextflow.Session', 'nextflow.cli.CmdRun') + 'N E X T F L O W  ~  version 24.04.2\n' + cmdRun + '\n  Version: 9.9.9 build 1\n', want: { version: '24.04.2' } },
    { name: 'a banner with no version number', text: ts + 'N E X T F L O W  ~  version soon\n', want: {} },
    { name: 'a localized date (logback 1.2, Persian digits)', text: 'اکتبر-۱۴ ۲۳:۴۰:۰۷.۰۸۹ [main] DEBUG nextflow.Session - Run name: a_b\n', want: { runName: 'a_b' } },
    { name: 'a month with a space and a hyphen (mn)', text: '10-р сар-14 23:40:07.089 [main] DEBUG nextflow.Session - Run name: a_b\n', want: { runName: 'a_b' } },
    { name: 'day before month (dd-MMM) reads too', text: '02-Dec 10:30:01.090 [main] DEBUG nextflow.Session - Run name: a_b\n', want: { runName: 'a_b' } },
    { name: 'a line indented like a continuation is not an entry', text: ' Mar-02 10:30:01.090 [main] DEBUG nextflow.Session - Run name: a_b\n', want: {} },
    { name: 'first run name wins', text: ts + 'Run name: a_b\n' + ts + 'Run name: c_d\n', want: { runName: 'a_b' } },
    { name: 'CRLF', text: ts + 'Run name: a_b\r\n', want: { runName: 'a_b' } },
    { name: 'Goodbye with a thread name holding spaces', text: 'Mar-02 10:30:01.090 [Actor Thread 3] DEBUG nextflow.script.ScriptRunner - > Execution complete -- Goodbye\n', want: { goodbye: true } },
    { name: 'Goodbye quoted inside another message is not Goodbye', text: ts + 'user said > Execution complete -- Goodbye\n', want: {} },
    { name: 'aborted with an empty cause', text: ts + 'Session aborted -- Cause: \n', want: { aborted: true, abortCause: '' } },
    { name: 'first abort cause wins', text: ts + 'Session aborted -- Cause: SIGINT\n' + ts + 'Session aborted -- Cause: SIGTERM\n', want: { aborted: true, abortCause: 'SIGINT' } },
    {
      name: 'Launching with DSL1 tag',
      text: 'Mar-02 10:30:01.004 [main] INFO  nextflow.cli.CmdRun - Launching `old.nf` [a_b] DSL1 - revision: 0123456789\n',
      want: { launching: { script: 'old.nf', runName: 'a_b', revision: '0123456789' } }
    },
    { name: 'a line without the layout is ignored', text: 'Session UUID: c0ffee00-1234-4abc-8def-0123456789ab\n', want: {} }
  ]
  for (const c of cases) {
    t.strictSame(parseLogMarkers(c.text), { aborted: false, goodbye: false, ...c.want }, c.name)
  }
})

t.test('a user\'s own log cannot stall the daemon that parses it: adversarial lines of the read size each return', async (t) => {
  // The daemon (root, shared by every user) parses a head of 256 KiB; a backtracking blow-up on one crafted line would
  // hold every user's runs. Each shape targets one expression; none may match anything either.
  const n = 256 * 1024
  const ts = 'Mar-02 10:30:01.090 [main] DEBUG nextflow.cli.CmdRun - '
  const shapes: Record<string, string> = {
    'a date-like prefix repeated': 'Mar-02 10:30:01.090 '.repeat(n / 20),
    'launching with open brackets': ts + 'Launching `a` [' + '` ['.repeat(n / 3),
    'launching with backticks': ts + 'Launching `' + 'x` [y'.repeat(n / 5),
    'a Process line without its end': '  Process: ' + '1'.repeat(n / 2) + '@' + 'a '.repeat(n / 4) + '[',
    'spaces before nothing': ' '.repeat(n),
    'digits in every script': '۱۲'.repeat(n / 2)
  }
  for (const [name, line] of Object.entries(shapes)) {
    t.strictSame(parseLogMarkers(ts + '\n' + line + '\n'), { aborted: false, goodbye: false }, name)
  }
})
