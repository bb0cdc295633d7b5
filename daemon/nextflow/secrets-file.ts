// Nextflow's local secrets store, byte for byte. LocalSecretsProvider writes it with
// `new GsonBuilder().setPrettyPrinting()`, so we reproduce Gson's JsonWriter output exactly: a JSON array of
// {"name","value"} objects sorted by name, two-space indent, `"key": value`, no trailing newline, `[]` when
// empty, and Gson's default HTML-safe escaping. Matching the bytes (not just the JSON) keeps the file
// indistinguishable from one `nextflow secrets set` wrote, and lets a test pin the format against a fixture.

export interface StoreEntry {
  name: string
  value: string
}

// Nextflow's own name rule (SecretsHelper.NAME_REGEX plus the `__` prefix check). Names read from the store
// are not validated by Nextflow, so whoever writes the file directly must check them.
const NAME_RE = /^[A-Za-z_](?:[0-9A-Za-z]+|(_)(?!\1)){1,49}$/

export function isValidSecretName (name: string): boolean {
  return name.length <= 100 && !name.startsWith('__') && NAME_RE.test(name)
}

// Gson's REPLACEMENT_CHARS: control characters as \u00xx (lowercase hex), with the short forms Gson uses for
// a few of them, plus the quote and the backslash.
const SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"',
  '\\': '\\\\',
  '\t': '\\t',
  '\b': '\\b',
  '\n': '\\n',
  '\r': '\\r',
  '\f': '\\f'
}

// Gson's HTML_SAFE_REPLACEMENT_CHARS, on by default (Gson's DEFAULT_ESCAPE_HTML); U+2028 and U+2029 are
// always escaped because they end a line in JavaScript.
const HTML_SAFE = new Set(['<', '>', '&', '=', '\'', '\u2028', '\u2029'])

function unicodeEscape (ch: string): string {
  return '\\u' + ch.charCodeAt(0).toString(16).padStart(4, '0')
}

// Every character gsonString escapes: SHORT_ESCAPES, the other control characters, HTML_SAFE. One UTF-16 unit each,
// so matching code units finds exactly what a walk by code point did (no astral character is escaped).
// eslint-disable-next-line no-control-regex -- the control characters are what must be escaped
const NEEDS_ESCAPE = /["\\\u0000-\u001f<>&='\u2028\u2029]/g

function escapeOne (ch: string): string {
  return SHORT_ESCAPES[ch] ?? (ch.charCodeAt(0) < 0x20 || HTML_SAFE.has(ch) ? unicodeEscape(ch) : ch)
}

/**
 * One JSON string literal exactly as Gson's JsonWriter (htmlSafe) writes it, quotes included. A value with nothing
 * to escape is copied once, not built a character at a time: that made a copy of the secret per character for the
 * collector to find (and to sweep: most of what an arm allocated, issue 18).
 */
export function gsonString (s: string): string {
  return '"' + s.replace(NEEDS_ESCAPE, escapeOne) + '"'
}

/**
 * The store file's text. Entries are sorted by name in UTF-16 code-unit order, which is what Java's
 * String.compareTo (the TreeMap in LocalSecretsProvider) uses. A duplicate name is a caller bug: refuse it
 * rather than silently keep one of the values.
 */
export function formatNextflowStore (entries: readonly StoreEntry[]): string {
  if (entries.length === 0) return '[]'
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.name === sorted[i - 1]!.name) throw new TypeError(`duplicate secret name ${sorted[i]!.name}`)
  }
  const objects = sorted.map(e =>
    '  {\n' +
    `    "name": ${gsonString(e.name)},\n` +
    `    "value": ${gsonString(e.value)}\n` +
    '  }')
  return '[\n' + objects.join(',\n') + '\n]'
}
