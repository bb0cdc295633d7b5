// The admin docs stay in step with the code: docs/errors.md lists every code of ERROR_SPECS with its HTTP status and
// exit status, and nothing else; docs/config.md lists every option of the config schema, and no option that the
// schema lacks. Adding a code or an option without documenting it fails here.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { TSchema } from '@sinclair/typebox'
import { ERROR_SPECS } from '../daemon/errors.js'
import { ConfigSchema } from '../daemon/config.js'
import { ROOT } from './helpers/daemon.js'

const read = (name: string): string => readFileSync(join(ROOT, 'docs', name), 'utf8')

/** Rows of the markdown tables whose first cell is a `code span`: [first cell's code, other cells]. */
function tableRows (markdown: string): Array<[string, string[]]> {
  const rows: Array<[string, string[]]> = []
  for (const line of markdown.split('\n')) {
    const m = /^\|\s*`([^`]+)`\s*\|(.*)\|\s*$/.exec(line)
    if (m === null) continue
    rows.push([m[1]!, m[2]!.split('|').map(c => c.trim())])
  }
  return rows
}

/** Every option's path in the schema: `hpc.runsRoot`, `watch[].root`; objects with fixed keys are walked, records are leaves. */
function schemaPaths (schema: TSchema, prefix = ''): string[] {
  const s = schema as TSchema & { type?: string, properties?: Record<string, TSchema>, items?: TSchema, anyOf?: TSchema[] }
  if (s.type === 'object' && s.properties !== undefined) {
    return Object.entries(s.properties).flatMap(([k, v]) => {
      const path = prefix === '' ? k : `${prefix}.${k}`
      const inner = schemaPaths(v, path)
      return inner.length > 0 ? inner : [path]
    })
  }
  if (s.type === 'array' && s.items !== undefined && (s.items as { type?: string }).type === 'object') {
    return schemaPaths(s.items, `${prefix}[]`)
  }
  return []
}

t.test('docs/errors.md: every code with its status and exit, and no other', async (t) => {
  const rows = tableRows(read('errors.md')).filter(([code]) => code.startsWith('NFS_ERR_'))
  const documented = new Map(rows.map(([code, cells]) => [code, cells]))
  t.equal(documented.size, rows.length, 'no code is listed twice')
  for (const [code, spec] of Object.entries(ERROR_SPECS)) {
    const cells = documented.get(code)
    t.ok(cells !== undefined, `${code} is documented`)
    if (cells === undefined) continue
    t.equal(cells[0], String(spec.status), `${code}: HTTP ${spec.status}`)
    t.equal(cells[1], String(spec.exit), `${code}: exit ${spec.exit}`)
    t.ok((cells[2] ?? '').length > 20, `${code} has a meaning`)
  }
  for (const code of documented.keys()) t.ok(code in ERROR_SPECS, `${code} exists in daemon/errors.ts`)
})

t.test('docs/config.md: every option of the schema, and no other', async (t) => {
  const paths = schemaPaths(ConfigSchema)
  t.ok(paths.includes('hpc.runsRoot') && paths.includes('watch[].root') && paths.includes('aws.tags'), 'the walk finds nested, array and record options')
  const documented = new Set(tableRows(read('config.md')).map(([first]) => first).filter(p => /^[a-z][A-Za-z]*(\[\])?(\.[a-z][A-Za-z]*)*$/.test(p)))
  for (const p of paths) t.ok(documented.has(p), `${p} is documented`)
  for (const p of documented) t.ok(paths.includes(p), `${p} is an option of the schema`)
})

t.test('the other admin docs exist and link the operations they promise', async (t) => {
  for (const name of ['install.md', 'usage.md', 'security.md', 'aws.md']) {
    t.ok(read(name).length > 1000, `docs/${name} is there`)
  }
  t.match(read('install.md'), /head -c ?32 \/dev\/urandom \| base64/, 'the key recipe that the daemon accepts (base64)')
  t.match(read('security.md'), /PrivateData=jobs/)
})
