// The fuzzer's request generator: raw HTTP/1.1 requests (bytes, so that broken request lines, bad encodings and
// invalid UTF-8 can be sent at all) built from the daemon's real routes, with methods, paths, queries, headers and
// bodies mutated by a seeded PRNG. Pure apart from the PRNG it is handed: the same seed gives the same requests.

export interface FuzzRequest {
  label: string
  bytes: Buffer
  method: string
  /** the bytes do not complete a request (a Content-Length longer than the body): only the client's end closes it */
  incomplete: boolean
}

type Rand = () => number

const ROUTES = [
  '/api/v1/health', '/api/v1/whoami', '/api/v1/status', '/api/v1/secrets', '/api/v1/secrets/resolve',
  '/api/v1/secrets/FUZZ_A', '/api/v1/workspaces', '/api/v1/workspaces/fuzzws', '/api/v1/workspaces/fuzzws/members/nobody',
  '/api/v1/workspaces/fuzzws/groups/nogroup', '/api/v1/runs', '/api/v1/runs/AAAAAAAAAAAAAA', '/api/v1/runs/AAAAAAAAAAAAAA/finish',
  '/api/v1/watches', '/api/v1/policies', '/api/v1/policies/launcher', '/metrics', '/api/v1/events',
  '/api/v1/runs/AAAAAAAAAAAAAA/attach', '/', '/api', '/api/v2/secrets', '/api/v1/../../etc/passwd', '/api/v1/nope'
]
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'MKCOL', 'LOCK', 'PURGE', 'SEARCH', 'LINK']
const BAD_METHODS = ['FOO', 'get', 'G-ET', 'POST POST', '\u00e9T', '']
const CONTENT_TYPES = [
  'application/json', 'application/json; charset=utf-8', 'application/json; charset=utf-16', 'APPLICATION/JSON',
  'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream',
  'application/json; boundary=', '*/*', ''
]
const WEIRD_STRINGS = [
  '', ' ', '\u0000', 'a\u0000b', '\ud800', '\udfff\ud800', '\u202e', '😀'.repeat(50), '$(id)', '`id`', '"', '\\', '\n',
  '../../etc/passwd', '%00', 'A'.repeat(101), 'A'.repeat(70_000), '__proto__', 'constructor', 'NaN', '-1', '1e309'
]

function pick<T> (r: Rand, items: readonly T[]): T {
  return items[Math.floor(r() * items.length)]!
}

function int (r: Rand, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1))
}

/** A value of a random JSON type, sometimes huge or deeply nested. */
function anyValue (r: Rand, depth = 0): unknown {
  switch (int(r, 0, 9)) {
    case 0: return null
    case 1: return r() < 0.5
    case 2: return pick(r, [0, -1, 1.5, 2 ** 53 + 1, 1e308, -0])
    case 3: return pick(r, WEIRD_STRINGS)
    case 4: return depth > 3 ? [] : Array.from({ length: int(r, 0, 4) }, () => anyValue(r, depth + 1))
    case 5: return depth > 3 ? {} : Object.fromEntries(Array.from({ length: int(r, 0, 4) }, (_, i) => [pick(r, ['name', 'value', 'mode', `k${i}`, '__proto__']), anyValue(r, depth + 1)]))
    case 6: return 'x'.repeat(int(r, 1000, 300_000))
    case 7: return pick(r, ['arm', 'run', 'launch', 'hpc', 'aws', 'memory', 'owner', 'view'])
    default: return `FUZZ_${int(r, 0, 999)}`
  }
}

/** A body close to a real one for the route, with one to three fields replaced by anything. */
function nearlyValid (r: Rand, launchDir: string): Record<string, unknown> {
  const base: Record<string, unknown> = pick(r, [
    { name: 'FUZZ_A', value: 'fuzz-value' },
    { value: 'fuzz-value', workspace: 'fuzzws' },
    { name: 'fuzzws' },
    { role: 'view' },
    // Never a runnable launch: the launch dir exists only for arm and run, and a command is never sent.
    { mode: 'arm', launchDir, targets: ['hpc'] },
    { mode: 'run', launchDir: '/nonexistent/fuzz', ttlSeconds: 5 },
    { exitCode: 0 },
    { dir: '/nonexistent/fuzz', targets: ['aws'] }
  ])
  const body: Record<string, unknown> = { ...base }
  for (let i = int(r, 0, 3); i > 0; i--) body[pick(r, [...Object.keys(base), 'extra', 'command', 'env', 'only'])] = anyValue(r)
  if (body.mode === 'launch' || body.command !== undefined) body.launchDir = '/nonexistent/fuzz'
  return body
}

function malformedJson (r: Rand): string {
  return pick(r, [
    '{', '{"name":', '{"name":"A",}', '[1,2', '{"a":1}{"b":2}', 'nul', 'tru', '"\\u12"', '{"a":"\\x41"}', "{'a':1}",
    '{"name":"FUZZ_A","value":"v","name":"OTHER"}', '['.repeat(5000) + ']'.repeat(5000), '{"a":'.repeat(2000) + '1' + '}'.repeat(2000),
    '\ufeff{"name":"FUZZ_A","value":"v"}', '{"__proto__":{"isAdmin":true}}', '{"constructor":{"prototype":{"x":1}}}', '1e999999', '-'
  ])
}

function bodyBytes (r: Rand, launchDir: string): Buffer {
  switch (int(r, 0, 5)) {
    case 0: return Buffer.alloc(0)
    case 1: return Buffer.from(malformedJson(r))
    // invalid UTF-8: a lone continuation byte, an overlong encoding, a truncated sequence
    case 2: return Buffer.concat([Buffer.from('{"name":"FUZZ_A","value":"'), Buffer.from(pick(r, [[0x80], [0xc0, 0xaf], [0xe2, 0x82], [0xff, 0xfe]])), Buffer.from('"}')])
    case 3: return Buffer.from(JSON.stringify(anyValue(r)))
    default: return Buffer.from(JSON.stringify(nearlyValid(r, launchDir)))
  }
}

function query (r: Rand): string {
  if (r() < 0.6) return ''
  return '?' + pick(r, ['workspace=fuzzws', 'workspace=%ZZ', 'workspace=a&workspace=b', 'all=true', 'all=maybe', 'workspace=' + 'w'.repeat(5000),
    'workspace[x]=1', '%00=%00', 'account=123&region=us-east-1', '&&&', 'workspace=%E2%82', 'workspace=personal'])
}

function mutatePath (r: Rand, path: string): string {
  switch (int(r, 0, 7)) {
    case 0: return path + '/' + pick(r, ['%00', '%2e%2e', '%ff', 'x'.repeat(3000), '..', '%2F', '😀', '%'])
    case 1: return path.toUpperCase()
    case 2: return path + '//'
    case 3: return path.replace('/api/v1/', '/api/v1//')
    default: return path
  }
}

/** One request. `launchDir` is a real dir of the caller's, so that some run bodies get as far as provisioning. */
export function fuzzRequest (r: Rand, launchDir: string): FuzzRequest {
  const badMethod = r() < 0.04
  const method = badMethod ? pick(r, BAD_METHODS) : pick(r, METHODS)
  const path = mutatePath(r, pick(r, ROUTES)) + query(r)
  const body = ['GET', 'HEAD'].includes(method) && r() < 0.8 ? Buffer.alloc(0) : bodyBytes(r, launchDir)
  const headers: string[] = ['Host: localhost', 'Connection: close']
  const ct = pick(r, CONTENT_TYPES)
  if (body.length > 0 && ct !== '') headers.push(`Content-Type: ${ct}`)
  // The length header is mostly right; sometimes a lie, absent, chunked, or a second encoding layered on top.
  const framing = int(r, 0, 19)
  if (framing === 0) headers.push(`Content-Length: ${body.length + int(r, 1, 10)}`)
  else if (framing === 1 && body.length > 0) headers.push(`Content-Length: ${Math.max(0, body.length - int(r, 1, body.length))}`)
  else if (framing === 2) headers.push('Transfer-Encoding: chunked')
  else if (framing === 3) headers.push(`Content-Length: ${body.length}`, `Content-Encoding: ${pick(r, ['gzip', 'br', 'identity', 'x-unknown'])}`)
  else if (framing === 4) headers.push(`Content-Length: ${body.length}`, `Content-Length: ${body.length + 1}`)
  else if (framing !== 5) headers.push(`Content-Length: ${body.length}`)
  if (r() < 0.05) headers.push(`X-Fuzz: ${'h'.repeat(int(r, 10, 20_000))}`)
  if (r() < 0.03) headers.push('Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: ' + pick(r, ['dGhlIHNhbXBsZSBub25jZQ==', 'bad']))
  const payload = framing === 2 ? Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from(r() < 0.8 ? '\r\n0\r\n\r\n' : '\r\nzz\r\n')]) : body
  const head = Buffer.from(`${method} ${path} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`, 'latin1')
  const label = `${method} ${path.slice(0, 80)} [${headers.filter(h => !h.startsWith('X-Fuzz')).slice(2).join('; ').slice(0, 160)}] body ${body.length}B`
  return { label, bytes: Buffer.concat([head, payload]), method, incomplete: framing === 0 }
}
