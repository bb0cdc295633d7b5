// What the reliability suite shares across its sections: the figures it prints at its end, the canary values it
// hands out, and the leak scan. Every place a value must never reach is collected while the suite runs (daemon
// logs, audit logs, ledgers, /events messages, CLI output, /proc/*/cmdline snapshots) and scanned at the end for
// every canary, so a leak in one section is caught even if it only shows up in another's output.
import { randomBytes } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import WebSocket from 'ws'
import type { TestDaemon } from '../helpers/daemon.js'
import { prng } from '../helpers/prng.js'

export interface Figures {
  runs: number
  kills: number
  faultsInjected: number
  requestsFuzzed: number
  canariesScanned: number
  leaksFound: number
}

export interface Leak { canary: string, source: string }

interface Teardown { teardown: (fn: () => unknown) => void }

export { prng }

export class Harness {
  readonly figures: Figures = { runs: 0, kills: 0, faultsInjected: 0, requestsFuzzed: 0, canariesScanned: 0, leaksFound: 0 }
  readonly seed: number
  readonly random: () => number
  readonly #canaries = new Set<string>()
  // source name -> text captured from it; files are read when captured, since temp dirs go in teardown.
  readonly #texts = new Map<string, string>()
  readonly #cmdlines = new Set<string>()
  readonly #events: string[] = []
  readonly #sockets = new Set<WebSocket>()
  #timer: NodeJS.Timeout | null = null

  constructor (t: Teardown, seed: number) {
    this.seed = seed
    this.random = prng(seed)
    t.teardown(() => this.stop())
  }

  /** A unique value that must never leave a run's own environment. `pad` makes it longer (up to 64 KiB values). */
  canary (label: string, pad = 0): string {
    const value = `CANARY-${label}-${randomBytes(8).toString('hex')}${pad > 0 ? '-' + 'x'.repeat(pad) : ''}`
    this.#canaries.add(value)
    return value
  }

  /** Register a value made elsewhere (versioned values of the load section). */
  addCanary (value: string): void {
    this.#canaries.add(value)
  }

  int (lo: number, hi: number): number {
    return lo + Math.floor(this.random() * (hi - lo + 1))
  }

  pick<T> (items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)]!
  }

  /** Text that must hold no canary, under a name the leak report uses. */
  addText (source: string, text: string): void {
    this.#texts.set(source, (this.#texts.get(source) ?? '') + text)
  }

  /** The daemon's log, audit log and run ledger as they are now (call before its temp dir goes). */
  captureDaemon (name: string, d: Pick<TestDaemon, 'logFile' | 'stateDir'>): void {
    for (const [what, path] of [['log', d.logFile], ['audit', join(d.stateDir, 'audit.log')], ['ledger', join(d.stateDir, 'runs.json')], ['ledger journal', join(d.stateDir, 'runs.journal')]] as const) {
      if (existsSync(path)) this.#texts.set(`${name} ${what}`, readFileSync(path, 'utf8'))
    }
  }

  /** Listen to /events as root (an admin sees every event) until the daemon goes or the suite ends. */
  // Resolves once the subscription is open (or could not be): events published before that never reach the scan, and
  // a section whose events all come early (the hostile one's secret adds) would leave the scan of events empty.
  async listen (socket: string): Promise<void> {
    const ws = new WebSocket(`ws+unix://${socket}:/api/v1/events`)
    this.#sockets.add(ws)
    ws.on('message', (data) => { this.#events.push(Buffer.from(data as Buffer).toString('utf8')) })
    ws.on('close', () => { this.#sockets.delete(ws) })
    await new Promise<void>(resolve => {
      ws.once('open', () => resolve())
      ws.on('error', () => resolve())
      ws.once('close', () => resolve())
    })
  }

  get eventCount (): number {
    return this.#events.length
  }

  /** Snapshot every process's argv every 50 ms for the rest of the suite. */
  startCmdlineSnapshots (): void {
    if (this.#timer !== null) return
    const snap = (): void => {
      for (const pid of readdirSync('/proc')) {
        if (!/^\d+$/.test(pid)) continue
        try {
          const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
          if (argv !== '') this.#cmdlines.add(argv)
        } catch {}
      }
    }
    snap()
    this.#timer = setInterval(snap, 50)
    this.#timer.unref()
  }

  get cmdlineCount (): number {
    return this.#cmdlines.size
  }

  stop (): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    for (const ws of this.#sockets) ws.terminate()
  }

  /** Every canary against every collected source; fills the figures. */
  scan (): Leak[] {
    const sources: Array<[string, string]> = [
      ...this.#texts,
      ['events', this.#events.join('\n')],
      ['/proc/*/cmdline', [...this.#cmdlines].join('\n')]
    ]
    const leaks: Leak[] = []
    for (const canary of this.#canaries) {
      // The random part alone: a value cut short or wrapped in quotes still counts.
      const core = /^CANARY-.*?-[0-9a-f]{16}/.exec(canary)?.[0] ?? canary
      for (const [source, text] of sources) if (text.includes(core)) leaks.push({ canary: core, source })
    }
    this.figures.canariesScanned = this.#canaries.size
    this.figures.leaksFound = leaks.length
    return leaks
  }
}
