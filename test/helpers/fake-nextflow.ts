// Plays one Nextflow run on disk in a launch dir, faithfully enough for the watcher and the liveness probes:
// the log rolled and written in 26.x order, the history line appended and later rewritten under
// history.lock, and the session LOCK held by a real child process whose pid is the one logged.
// See /work/shared/nextflow/NOTES.md section 2 for the order of events this follows.
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { hostname, networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseHistory } from '../../daemon/nextflow/history.js'
import { JVM_SCRIPT, PYTHON } from './fake-nextflow-jvm.js'

export interface FakeNextflowOptions {
  launchDir: string
  /** default: a new UUID (as NXF_UUID would set it) */
  sessionId?: string
  /** default: a generated adjective_name not yet in this dir's history */
  runName?: string
  /** `-resume <sessionId>`: needs the sessionId of an earlier run */
  resume?: boolean
  /** run the "JVM" (and so own every file it writes) as this user */
  uid?: number
  gid?: number
  /** the script or repository in the Launcher and Launching lines; default `main.nf` */
  script?: string
  /** the path in the `Secrets store:` line; default `$HOME/.nextflow/secrets/store.json` */
  secretsFile?: string
  /** a JVM in another locale or zone: the log's date text (fixed), the history's (fixed, or now in a zone) */
  jvm?: { logDate?: string, historyDate?: string, historyZone?: string }
  /** the host's own name does not resolve: the JDK logs `Process: PID@localhost null` */
  unresolvedHost?: boolean
  /** the banner's and CmdInfo's version; default 26.08.0-edge */
  version?: string
  /** the pid the `Process:` line names (a forged one); default the child's own */
  processPid?: number
}

export type FinishStatus = 'OK' | 'ERR'

export interface FakeNextflow {
  readonly pid: number
  readonly sessionId: string
  readonly runName: string
  readonly launchDir: string
  readonly host: string
  /** `<launchDir>/.nextflow/cache/<uuid>/db/LOCK` */
  readonly lockPath: string
  /** the child's exit code once it has exited (137-style kills give null) */
  readonly exited: Promise<number | null>
  /** a clean end: history rewritten with status and duration, Goodbye logged, exit 0 (OK) or 1 (ERR) */
  finish: (status: FinishStatus, cause?: string) => Promise<number | null>
  /** SIGKILL: history stays `-`, the log just stops, the kernel drops the lock */
  kill: () => Promise<void>
  /** `.nextflow.pid`, as the launcher script writes it for `-bg` */
  writePidFile: () => Promise<void>
  /** for t.teardown: kills the child if it still runs */
  close: () => Promise<void>
}

const ADJECTIVES = ['brave', 'calm', 'eager', 'gentle', 'jolly', 'lucid', 'nifty', 'quirky', 'sleepy', 'witty']
const NAMES = ['curie', 'darwin', 'euler', 'galois', 'hopper', 'lovelace', 'noether', 'pasteur', 'ramanujan', 'turing']

function pick<T> (list: T[]): T {
  return list[Math.floor(Math.random() * list.length)] as T
}

function pad (n: number, width = 2): string {
  return String(n).padStart(width, '0')
}

/** `yyyy-MM-dd HH:mm:ss`, local time (or the wall clock in `zone`), as HistoryFile's SimpleDateFormat writes it. */
function historyTimestamp (d: Date, zone?: string): string {
  if (zone === undefined) return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  const p = Object.fromEntries(new Intl.DateTimeFormat('en-US', {
    timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23'
  }).formatToParts(d).map(x => [x.type, x.value]))
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`
}

/** nextflow.util.Duration.toString(): `850ms`, `41.3s`, `2m 14s`, `1h 3m 5s`, `2d 4h`. */
export function formatDuration (ms: number): string {
  if (ms < 1000) return `${ms}ms`
  // Groovy's BigDecimal division prints `5s`, not `5.0s`
  if (ms < 60_000) return `${Math.round(ms / 100) / 10}s`
  let secs = Math.round(ms / 1000)
  const days = Math.floor(secs / 86400); secs -= days * 86400
  const hours = Math.floor(secs / 3600); secs -= hours * 3600
  const mins = Math.floor(secs / 60); secs -= mins * 60
  const parts: string[] = []
  if (days > 0) parts.push(`${days}d`)
  if (hours > 0) parts.push(`${hours}h`)
  if (mins > 0) parts.push(`${mins}m`)
  if (secs > 0) parts.push(`${secs}s`)
  return parts.join(' ')
}

function ipAddress (): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  }
  return '127.0.0.1'
}

/** Drives the python child: one JSON line out, one `ok`/`err` line back, strictly in order. */
function commandChannel (child: ChildProcess): (cmd: Record<string, unknown>) => Promise<void> {
  const waiting: Array<{ resolve: () => void, reject: (e: Error) => void }> = []
  const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  rl.on('line', (line) => {
    if (line === 'ready') return
    const w = waiting.shift()
    if (w === undefined) return
    if (line === 'ok') w.resolve()
    else w.reject(new Error(`fake nextflow: ${line}`))
  })
  child.on('exit', () => {
    for (const w of waiting.splice(0)) w.reject(new Error('fake nextflow exited'))
  })
  return async (cmd) => {
    const done = new Promise<void>((resolve, reject) => waiting.push({ resolve, reject }))
    child.stdin?.write(JSON.stringify(cmd) + '\n')
    await done
  }
}

async function existingRunNames (history: string): Promise<Set<string>> {
  const text = await readFile(history, 'utf8').catch(() => '')
  return new Set(parseHistory(text).records.map((r) => r.runName))
}

export async function startFakeNextflow (opts: FakeNextflowOptions): Promise<FakeNextflow> {
  const { launchDir } = opts
  if (opts.resume === true && opts.sessionId === undefined) throw new Error('resume needs the sessionId of an earlier run')
  const sessionId = opts.sessionId ?? randomUUID()
  const history = join(launchDir, '.nextflow', 'history')
  const used = await existingRunNames(history)
  let runName = opts.runName ?? `${pick(ADJECTIVES)}_${pick(NAMES)}`
  while (opts.runName === undefined && used.has(runName)) runName = `${pick(ADJECTIVES)}_${pick(NAMES)}_${Math.floor(Math.random() * 1000)}`
  const script = opts.script ?? 'main.nf'
  // the script id is a hash of the script, so it is stable across runs of the same script
  const revisionId = createHash('md5').update(script).digest('hex')
  const host = hostname()
  const lockPath = join(launchDir, '.nextflow', 'cache', sessionId, 'db', 'LOCK')
  const cli = ['nextflow', 'run', script, ...(opts.runName !== undefined ? ['-name', runName] : []),
    ...(opts.resume === true ? ['-resume', sessionId] : [])].join(' ')

  const child = spawn(PYTHON, ['-c', JVM_SCRIPT], {
    cwd: launchDir,
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C', ...(process.env.TZ !== undefined ? { TZ: process.env.TZ } : {}) },
    ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
    ...(opts.gid !== undefined ? { gid: opts.gid } : {})
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  await once(child, 'spawn')
  const pid = child.pid as number
  const send = commandChannel(child)
  const log = (logger: string, msg: string, level = 'DEBUG', thread = 'main'): Promise<void> =>
    send({ op: 'log', level, logger, msg, thread, ...(opts.jvm?.logDate !== undefined ? { ts: opts.jvm.logDate } : {}) })

  // Launcher and CmdRun, in the 26.x order (secrets provider before Launching, no DSL2 tag)
  await send({ op: 'rotate', path: '.nextflow.log' })
  await log('nextflow.cli.Launcher', `$> ${cli}`)
  const version = opts.version ?? '26.08.0-edge'
  await log('nextflow.cli.CmdRun', `N E X T F L O W  ~  version ${version}`)
  const store = opts.secretsFile ?? join(process.env.HOME ?? '/root', '.nextflow', 'secrets', 'store.json')
  await log('n.secret.LocalSecretsProvider', `Secrets store: ${store}`)
  await log('nextflow.secret.SecretsLoader', 'Discovered secrets providers: [nextflow.secret.LocalSecretsProvider@6d1e7682] - activable => nextflow.secret.LocalSecretsProvider@6d1e7682')
  await log('nextflow.cli.CmdRun', `Launching \`${script}\` [${runName}] - revision: ${revisionId.slice(0, 10)}`, 'INFO')
  await log('nextflow.Session', `Session UUID: ${sessionId}`)
  await log('nextflow.Session', `Run name: ${runName}`)
  await log('nextflow.Session', 'Executor pool size: 2')
  await log('nextflow.cli.CmdRun', [
    '', `  Version: ${version} build 0`, '  System: Linux', '  Encoding: UTF-8 (UTF-8)',
    opts.unresolvedHost === true ? `  Process: ${opts.processPid ?? pid}@localhost null` : `  Process: ${opts.processPid ?? pid}@${host} [${ipAddress()}]`, '  CPUs: 2 - Mem: 2 GB (1 GB) - Swap: 0 (0)'
  ].join('\n'))

  // ScriptRunner.verifyAndTrackHistory: the `-` line goes in before the cache DB is opened
  const startedAt = new Date()
  await send({
    op: 'history-append',
    history: '.nextflow/history',
    line: [opts.jvm?.historyDate ?? historyTimestamp(startedAt, opts.jvm?.historyZone), '-', runName, '-', revisionId, sessionId, cli].join('\t')
  })
  // Session.init opens the LevelDB cache: the LOCK is held from here to CacheDB.close
  await send({ op: 'session-lock', path: lockPath })
  await send({ op: 'write', path: join(launchDir, '.nextflow', 'cache', sessionId, `index.${runName}`), text: '' })
  await log('nextflow.Session', `Work-dir: ${join(launchDir, 'work')} [ext4]`)
  await log('nextflow.Session', 'Session start')
  await log('nextflow.script.ScriptRunner', '> Launching execution')
  await log('nextflow.script.ScriptRunner', '> Awaiting termination ')
  await log('nextflow.Session', 'Session await')

  let ended = false

  async function finish (status: FinishStatus, cause = 'Process `SAY_HELLO (1)` terminated with an error exit status (1)'): Promise<number | null> {
    if (ended) throw new Error('fake nextflow already ended')
    ended = true
    if (status === 'ERR') await log('nextflow.Session', `Session aborted -- Cause: ${cause}`, 'DEBUG', 'Task monitor')
    await log('nextflow.Session', 'Session await > all processes finished')
    await log('nextflow.Session', 'Session await > all barriers passed')
    await log('n.trace.WorkflowStatsObserver', `Workflow completed > WorkflowStats[succeededCount=${status === 'OK' ? 1 : 0}; failedCount=${status === 'OK' ? 0 : 1}; ignoredCount=0; cachedCount=0]`)
    // Session.destroy: the cache DB closes (lock released), then the finally block updates the history
    await send({ op: 'session-unlock' })
    await log('nextflow.cache.CacheDB', 'Closing CacheDB done')
    await send({ op: 'history-update', history: '.nextflow/history', runName, status, duration: formatDuration(Date.now() - startedAt.getTime()) })
    await log('nextflow.script.ScriptRunner', '> Execution complete -- Goodbye')
    await send({ op: 'exit', code: status === 'OK' ? 0 : 1 })
    return await exited
  }

  async function kill (): Promise<void> {
    ended = true
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  }

  async function writePidFile (): Promise<void> {
    await send({ op: 'write', path: join(launchDir, '.nextflow.pid'), text: `${pid}\n` })
  }

  return { pid, sessionId, runName, launchDir, host, lockPath, exited, finish, kill, writePidFile, close: kill }
}
