// Nextflow's local secrets store, byte for byte (daemon/nextflow/secrets-file.ts): the fixture is a file
// `nextflow secrets set` wrote; Gson's escaping and Nextflow's name rule as tables.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { formatNextflowStore, gsonString, isValidSecretName } from '../../daemon/nextflow/secrets-file.js'

const fixture = readFileSync(new URL('../fixtures/nextflow/store.json', import.meta.url))

t.test('formatNextflowStore matches the Nextflow fixture byte for byte', async t => {
  const text = formatNextflowStore([
    { name: 'SIGNING_KEY_B64', value: 'c2lnbmluZy1rZXk=' },
    { name: 'DB_PASSWORD', value: 'hunter2' },
    { name: 'API_TOKEN', value: 's3cr3t-token' },
    { name: 'PRICE_TAG', value: 'costs $5' }
  ])
  t.same(Buffer.from(text, 'utf8'), fixture)
  t.equal(formatNextflowStore([]), '[]')
  t.equal(formatNextflowStore([{ name: 'foo', value: 'bar' }, { name: 'hello', value: 'world' }]),
    '[\n  {\n    "name": "foo",\n    "value": "bar"\n  },\n  {\n    "name": "hello",\n    "value": "world"\n  }\n]')
  t.throws(() => formatNextflowStore([{ name: 'A1', value: 'x' }, { name: 'A1', value: 'y' }]))
  t.same(JSON.parse(text).map((e: { name: string }) => e.name), ['API_TOKEN', 'DB_PASSWORD', 'PRICE_TAG', 'SIGNING_KEY_B64'])
})

t.test('gsonString escapes like Gson with HTML escaping', async t => {
  const table: Array<[string, string]> = [
    ['a=b', '"a\\u003db"'],
    ['<>&\'', '"\\u003c\\u003e\\u0026\\u0027"'],
    ['q"b\\', '"q\\"b\\\\"'],
    ['\t\n\r\b\f', '"\\t\\n\\r\\b\\f"'],
    ['\u0001\u001b', '"\\u0001\\u001b"'],
    ['\u2028\u2029', '"\\u2028\\u2029"'],
    ['é/ü€😀\u007f', '"é/ü€😀\u007f"']
  ]
  // Assertion names carry no raw input: U+2028 would end a TAP line.
  table.forEach(([input, want], i) => {
    t.equal(gsonString(input), want, `row ${i}`)
    t.equal(JSON.parse(gsonString(input)), input, `row ${i} parses back`)
  })
})

t.test('secret names follow Nextflow rule', async t => {
  for (const ok of ['AB', 'A_', '_A', 'api_token', 'A' + 'b'.repeat(99)]) t.ok(isValidSecretName(ok), ok)
  for (const bad of ['A', '1A', 'A__B', '__A', 'A-B', 'A B', '', 'A' + 'b'.repeat(100)]) t.notOk(isValidSecretName(bad), bad)
})

// gsonString escapes with one pattern since issue 18 (it walked the value a character at a time). Held here to that
// walk, written out from Gson's JsonWriter rules, over every UTF-16 unit alone, at the ends of a string and in
// astral pairs and lone surrogates.
t.test('gsonString gives what a walk of the value by code point gives', async t => {
  const short: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\t': '\\t', '\b': '\\b', '\n': '\\n', '\r': '\\r', '\f': '\\f' }
  const html = new Set(['<', '>', '&', '=', '\'', '\u2028', '\u2029'])
  const walk = (s: string): string => {
    let out = '"'
    for (const ch of s) {
      if (short[ch] !== undefined) out += short[ch]
      else if (ch.charCodeAt(0) < 0x20 || html.has(ch)) out += '\\u' + ch.charCodeAt(0).toString(16).padStart(4, '0')
      else out += ch
    }
    return out + '"'
  }
  const differ: string[] = []
  for (let u = 0; u <= 0xffff; u++) {
    const ch = String.fromCharCode(u)
    for (const s of [ch, `a${ch}`, `${ch}b`, `x${ch}${ch}y`]) if (gsonString(s) !== walk(s)) differ.push(`U+${u.toString(16)} in ${JSON.stringify(s)}`)
  }
  for (const s of ['\u{1F600}', 'a\u{1F600}<b', '\ud800', '\udc00x', 'x\ud83d', 'p=\u{10FFFF}&q', '']) if (gsonString(s) !== walk(s)) differ.push(JSON.stringify(s))
  t.same(differ.slice(0, 20), [], 'no string where the two differ')
})
