// The one table `npm run bench` prints, and results/latest.json. A figure never fails anything: `met` is reported,
// not enforced. Every row carries the baseline measured in the same run and the ratio between the two.
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { dirname } from 'node:path'
import { round } from './stats.js'

export interface Figure {
  /** what was measured, with its unit */
  figure: string
  value: number
  /** what it is compared with, measured in this run */
  baselineLabel: string
  baseline: number
  /** value / baseline, or a ratio the target is written against (see `ratioOf`) */
  ratio: number
  /** the aim, in words, as in issue 8 */
  target: string
  /** null when the target cannot be judged (a part did not run) */
  met: boolean | null
  note?: string
}

export function ratio (value: number, baseline: number): number {
  return baseline === 0 || !Number.isFinite(baseline) ? Number.NaN : value / baseline
}

function cell (v: number | string): string {
  if (typeof v === 'string') return v
  if (!Number.isFinite(v)) return 'n/a'
  const abs = Math.abs(v)
  return String(abs >= 100 ? Math.round(v) : abs >= 10 ? round(v, 1) : round(v, 2))
}

/** A plain-text table with aligned columns. Pure. */
export function formatTable (figures: readonly Figure[]): string {
  const head = ['figure', 'value', 'baseline', 'ratio', 'target', 'met?']
  const rows = figures.map(f => [
    f.figure,
    cell(f.value),
    `${cell(f.baseline)} (${f.baselineLabel})`,
    cell(f.ratio),
    f.target,
    f.met === null ? '-' : f.met ? 'yes' : 'NO'
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map(r => r[i]!.length)))
  const line = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()
  const notes = figures.filter(f => f.note !== undefined).map(f => `  - ${f.figure}: ${f.note}`)
  return [line(head), widths.map(w => '-'.repeat(w)).join('  '), ...rows.map(line), ...(notes.length > 0 ? ['', 'notes:', ...notes] : [])].join('\n')
}

export interface Machine {
  cpus: number
  memMb: number
  node: string
  /** load averages at the start and the end of the run: other work on the machine skews every figure */
  loadStart: number[]
  loadEnd: number[]
}

export function machineAtStart (): Machine {
  return { cpus: cpus().length, memMb: Math.round(totalmem() / 2 ** 20), node: process.version, loadStart: loadavg().map(l => round(l)), loadEnd: [] }
}

export interface Results {
  startedAt: string
  quick: boolean
  durationS: number
  machine: Machine
  figures: Figure[]
  /** sections that failed to run, with why */
  errors: Array<{ section: string, error: string }>
}

export function writeResults (path: string, results: Results): void {
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`)
}
