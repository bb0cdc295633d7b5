// Output of nf-secrets: aligned tables and short sentences for people, JSON for scripts (`--json`). The formatting
// functions are pure; Output only decides where their text goes.

export interface Output {
  readonly json: boolean
  /** `--json`: the data as JSON; otherwise the human text */
  result: (data: unknown, human: () => string) => void
  /** one line as it streams (events): compact JSON or human text */
  line: (data: unknown, human: () => string) => void
}

export function createOutput (json: boolean, stdout: NodeJS.WritableStream): Output {
  return {
    json,
    result (data, human) {
      stdout.write(json ? `${JSON.stringify(data, null, 2)}\n` : ensureNewline(human()))
    },
    line (data, human) {
      stdout.write(json ? `${JSON.stringify(data)}\n` : ensureNewline(human()))
    }
  }
}

function ensureNewline (s: string): string {
  return s === '' || s.endsWith('\n') ? s : `${s}\n`
}

/**
 * Columns padded to their widest cell, two spaces apart, the last column unpadded. Control characters are shown
 * escaped, so a name or a user field can never move the cursor or rewrite the terminal.
 */
export function renderTable (headers: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cells = [headers, ...rows.map(r => headers.map((_, i) => cell(r[i])))]
  const widths = headers.map((_, i) => Math.max(...cells.map(r => r[i]!.length)))
  return cells.map(r => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n'
}

export function cell (v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined || v === '') return '-'
  return safeText(String(v))
}

/** Escape C0/C1 control characters for display. */
export function safeText (s: string): string {
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, ch => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

/** An ISO time as `YYYY-MM-DD HH:MM:SS` UTC, '-' when absent. */
export function shortTime (iso: string | null | undefined): string {
  if (iso === null || iso === undefined || iso === '') return '-'
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return safeText(iso)
  return d.toISOString().replace('T', ' ').slice(0, 19)
}

/** `key: value` lines with the keys aligned. */
export function renderFields (fields: Array<[string, string | number | boolean | null | undefined]>): string {
  const width = Math.max(...fields.map(([k]) => k.length))
  return fields.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${cell(v)}`).join('\n') + '\n'
}

export function formatDuration (seconds: number): string {
  const s = Math.max(0, Math.floor(seconds))
  const d = Math.floor(s / 86400)
  const h = Math.floor((s % 86400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  const parts = [d > 0 ? `${d}d` : '', h > 0 ? `${h}h` : '', m > 0 ? `${m}m` : '', `${s % 60}s`].filter(p => p !== '')
  return parts.slice(0, 2).join(' ')
}

/** `a=1, b=2` for small maps (counts by state, roles by workspace); '-' when empty. */
export function renderMap (m: Record<string, unknown> | null | undefined): string {
  const entries = Object.entries(m ?? {})
  if (entries.length === 0) return '-'
  return entries.map(([k, v]) => `${safeText(k)}=${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`).join(', ')
}
