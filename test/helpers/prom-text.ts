// A strict parser of the Prometheus text exposition format (version 0.0.4), enough to check what /metrics serves:
// `# HELP` and `# TYPE` lines, samples `name{label="value",...} value [timestamp]`, label values with the three
// escapes (\\, \", \n). Anything else is an error, so a malformed exposition fails the test that reads it.

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface Exposition {
  types: Map<string, MetricType>
  help: Map<string, string>
  samples: Sample[]
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])

// Prometheus reads values with Go's ParseFloat, which takes Inf and NaN in any case (prom-client writes "Nan").
function parseValue (text: string, line: string): number {
  const lower = text.toLowerCase()
  if (lower === '+inf' || lower === 'inf') return Infinity
  if (lower === '-inf') return -Infinity
  if (lower === 'nan') return NaN
  const v = Number(text)
  if (text === '' || Number.isNaN(v)) throw new Error(`bad sample value in: ${line}`)
  return v
}

function parseLabels (s: string, line: string): { labels: Record<string, string>, rest: string } {
  const labels: Record<string, string> = {}
  let i = 1 // after '{'
  for (;;) {
    while (s[i] === ' ' || s[i] === ',') i++
    if (s[i] === '}') return { labels, rest: s.slice(i + 1) }
    const m = LABEL.exec(s.slice(i))
    if (m === null) throw new Error(`bad label name in: ${line}`)
    const key = m[0]
    i += key.length
    if (s[i] !== '=' || s[i + 1] !== '"') throw new Error(`expected ="..." after ${key} in: ${line}`)
    i += 2
    let value = ''
    for (;;) {
      const c = s[i]
      if (c === undefined) throw new Error(`unterminated label value in: ${line}`)
      if (c === '"') { i++; break }
      if (c === '\\') {
        const e = s[i + 1]
        if (e === 'n') value += '\n'
        else if (e === '\\' || e === '"') value += e
        else throw new Error(`bad escape \\${String(e)} in: ${line}`)
        i += 2
        continue
      }
      value += c
      i++
    }
    if (key in labels) throw new Error(`label ${key} twice in: ${line}`)
    labels[key] = value
  }
}

export function parseExposition (text: string): Exposition {
  const out: Exposition = { types: new Map(), help: new Map(), samples: [] }
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) ?(.*)$/.exec(line)
      if (m === null) continue // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string]
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`bad type in: ${line}`)
        if (out.types.has(name)) throw new Error(`TYPE of ${name} twice`)
        out.types.set(name, rest as MetricType)
      } else {
        out.help.set(name, rest)
      }
      continue
    }
    const m = NAME.exec(line)
    if (m === null) throw new Error(`bad metric name in: ${line}`)
    const name = m[0]
    let rest = line.slice(name.length)
    let labels: Record<string, string> = {}
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, line))
    const parts = rest.trim().split(/\s+/)
    if (parts.length < 1 || parts.length > 2) throw new Error(`bad sample in: ${line}`)
    out.samples.push({ name, labels, value: parseValue(parts[0]!, line) })
  }
  return out
}

/** The one sample of `name` whose labels include `labels`; throws when there is none or more than one. */
export function sample (e: Exposition, name: string, labels: Record<string, string> = {}): number {
  const hits = e.samples.filter(s => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  if (hits.length !== 1) throw new Error(`${hits.length} samples of ${name} ${JSON.stringify(labels)}`)
  return hits[0]!.value
}

/** The family a sample belongs to: histogram samples carry _bucket, _sum and _count suffixes. */
export function familyOf (e: Exposition, sampleName: string): string | undefined {
  if (e.types.has(sampleName)) return sampleName
  const base = sampleName.replace(/_(bucket|sum|count)$/, '')
  return e.types.has(base) ? base : undefined
}
