// Plays the few files of a Nextflow run that the daemon reads, written by the benchmark itself so that it knows the
// instant each change lands: `.nextflow.log` (identity, the JVM's pid, Goodbye) and the `.nextflow/history` line
// (`-` at start, rewritten in place to OK at the end, as HistoryFile does). The "JVM" pid is the benchmark's own, a
// live process on this host, so the liveness probes keep the run alive between its start and its end.
import { randomUUID } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const pad = (n: number, w = 2): string => String(n).padStart(w, '0')

function logStamp (d = new Date()): string {
  return `${MONTHS[d.getMonth()]}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
}

function historyStamp (d = new Date()): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
}

const REVISION = '5c1a9e7d2f3b4a6c8d0e1f2a3b4c5d6e'

function historyLine (runName: string, status: '-' | 'OK', sessionId: string, duration = '-'): string {
  return [historyStamp(), duration, runName, status, REVISION, sessionId, `nextflow run main.nf -name ${runName}`].join('\t')
}

/** A launch dir that has seen one earlier, finished run (so `.nextflow/history` exists and the dir is a launch dir). */
export function prepareLaunchDir (dir: string): void {
  mkdirSync(join(dir, '.nextflow'), { recursive: true })
  writeFileSync(join(dir, '.nextflow', 'history'), `${historyLine('old_run', 'OK', randomUUID(), '1m 2s')}\n`)
}

/**
 * A launch dir a scientist has used for years: `lines` finished runs in its history (about 150 bytes each, as real
 * ones with a short command). `next()` plays one more run's lines as Nextflow writes them: the start appended, then
 * the whole file written again with it ended (HistoryFile.update: truncate and write, the same inode).
 */
export class LongHistory {
  readonly dir: string
  #text: string
  #n: number

  constructor (dir: string, lines: number) {
    this.dir = dir
    this.#n = lines
    const out: string[] = []
    for (let i = 0; i < lines; i++) out.push(historyLine(`old_run_${i}`, 'OK', randomUUID(), `${1 + (i % 50)}m ${i % 60}s`))
    this.#text = out.join('\n') + '\n'
    mkdirSync(join(dir, '.nextflow'), { recursive: true })
    writeFileSync(join(dir, '.nextflow', 'history'), this.#text)
  }

  get bytes (): number {
    return Buffer.byteLength(this.#text)
  }

  next (): void {
    const runName = `old_run_${this.#n++}`
    const sessionId = randomUUID()
    appendFileSync(join(this.dir, '.nextflow', 'history'), historyLine(runName, '-', sessionId) + '\n')
    this.#text += historyLine(runName, 'OK', sessionId, '2m 3s') + '\n'
    writeFileSync(join(this.dir, '.nextflow', 'history'), this.#text)
  }
}

export class PlayedRun {
  readonly dir: string
  readonly sessionId: string
  readonly runName: string
  #line = ''

  constructor (dir: string, sessionId: string, index: number) {
    this.dir = dir
    this.sessionId = sessionId
    this.runName = `bench_run_${index}`
  }

  /** The JVM's first log lines: Launcher, CmdRun's info block with `Process: PID@HOST`, the session's identity. */
  writeLogHead (): void {
    const e = (logger: string, msg: string): string => `${logStamp()} [main] DEBUG ${logger} - ${msg}\n`
    writeFileSync(join(this.dir, '.nextflow.log'),
      e('nextflow.cli.Launcher', '$> nextflow run main.nf -name ' + this.runName) +
      e('nextflow.cli.CmdRun', '') + `  Version: 25.10.0 build 10289\n  Process: ${process.pid}@${hostname()} [127.0.0.1]\n` +
      e('nextflow.cli.CmdRun', `Launching \`main.nf\` [${this.runName}] DSL2 - revision: ${REVISION.slice(0, 10)}`) +
      e('nextflow.Session', `Session UUID: ${this.sessionId}`) +
      e('nextflow.Session', `Run name: ${this.runName}`))
  }

  /** The start: the history line appended with status `-`. */
  start (): void {
    this.#line = historyLine(this.runName, '-', this.sessionId)
    appendFileSync(join(this.dir, '.nextflow', 'history'), `${this.#line}\n`)
  }

  /** The end: history rewritten in place (truncate and write) with OK and a duration. */
  finishHistory (): void {
    const file = join(this.dir, '.nextflow', 'history')
    const text = readFileSync(file, 'utf8').replace(this.#line, historyLine(this.runName, 'OK', this.sessionId, '2.1s'))
    writeFileSync(file, text)
  }

  /** Logged after the history update, on success and abort alike. */
  goodbye (): void {
    appendFileSync(join(this.dir, '.nextflow.log'), `${logStamp()} [main] DEBUG nextflow.util.LoggerHelper - > Execution complete -- Goodbye\n`)
  }
}
