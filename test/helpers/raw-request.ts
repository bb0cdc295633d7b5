// One raw HTTP request over the daemon's socket, made by a child process running as a given Unix user, with
// whatever headers and path the test chooses: for proving that nothing a client sends changes who it is.
import { runNode, json, type RunOptions } from './cli.js'

export interface RawRequest {
  socket: string
  method?: string
  path: string
  headers?: Record<string, string>
  body?: string
}

export interface RawResponse { status: number, body: string }

// Runs inside the child: the request comes as one JSON argument (no secret values go through here).
const SCRIPT = `
const http = require('node:http')
const r = JSON.parse(process.argv[1])
const req = http.request({ socketPath: r.socket, method: r.method, path: r.path, headers: r.headers }, (res) => {
  const chunks = []
  res.on('data', c => chunks.push(c))
  res.on('end', () => process.stdout.write(JSON.stringify({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') })))
})
req.on('error', (e) => { process.stdout.write(JSON.stringify({ status: 0, body: String(e.code || e.message) })) })
if (r.body !== undefined) req.write(r.body)
req.end()
`

export async function rawRequest (r: RawRequest, opts: Pick<RunOptions, 'user' | 'timeoutMs'> = {}): Promise<RawResponse> {
  const arg = JSON.stringify({ method: 'GET', headers: {}, ...r })
  const res = await runNode('-e', [SCRIPT, arg], opts)
  if (res.code !== 0) throw new Error(`raw request failed (${res.code}): ${res.stderr}`)
  return json<RawResponse>(res.stdout)
}
