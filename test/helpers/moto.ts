// moto's server as the AWS Secrets Manager of the tests: started once per test file on a free port, reset between
// tests, stopped in teardown. Tests look at what reached it through raw JSON calls (smCall), a path independent
// of the SDK client under test.
import { spawn, type ChildProcess } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from './free-port.js'

export const MOTO_REGION = 'us-east-1'
export const MOTO_ACCOUNT = '123456789012'
export const MOTO_CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' }
const INSTALL_HINT = "moto's server is needed for the AWS tests: pip install 'moto[server]'"

export interface Moto {
  endpoint: string
  reset (): Promise<void>
  stop (): Promise<void>
}

interface Teardown { teardown (fn: () => unknown): void }

async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
  await exited
  clearTimeout(timer)
}

/**
 * Starts moto and registers its stop with `t`. Fails, never skips, when moto is not installed. A server whose port
 * another process took between the pick and its bind exits at once: moto then starts again on another port.
 */
export async function startMoto (t: Teardown): Promise<Moto> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startMotoOnce(t)
    } catch (err) {
      if (!(err instanceof Error) || !/Address already in use/i.test(err.message) || attempt === 3) throw err
    }
  }
}

async function startMotoOnce (t: Teardown): Promise<Moto> {
  const port = await freePort()
  const endpoint = `http://127.0.0.1:${port}`
  const child = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000) })
  let spawnFailure: Error | undefined
  child.once('error', (err) => { spawnFailure = err })
  const stop = async (): Promise<void> => await stopChild(child)
  t.teardown(stop)

  const deadline = Date.now() + 20_000
  for (;;) {
    if (child.exitCode !== null) {
      const missing = /No module named/.test(stderr)
      throw new Error(missing ? INSTALL_HINT : `moto.server exited (${child.exitCode}): ${stderr}`)
    }
    if (spawnFailure !== undefined) throw new Error(`${INSTALL_HINT} (python3 could not start: ${spawnFailure.message})`)
    try {
      const res = await fetch(`${endpoint}/moto-api/`)
      await res.arrayBuffer()
      if (res.ok) break
    } catch {}
    if (Date.now() > deadline) throw new Error(`moto.server did not answer on ${endpoint}; ${INSTALL_HINT}`)
    await sleep(100)
  }

  return {
    endpoint,
    reset: async () => {
      const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' })
      await res.arrayBuffer()
      if (!res.ok) throw new Error(`moto reset answered ${res.status}`)
    },
    stop
  }
}

/** One Secrets Manager JSON call straight to `endpoint`, without the SDK. Throws `{name}` on an AWS error. */
export async function smCall<T = Record<string, unknown>> (endpoint: string, op: string, body: object): Promise<T> {
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.1',
      'x-amz-target': `secretsmanager.${op}`,
      // moto takes the region (and so the ARNs) from the credential scope; the signature itself is not checked.
      authorization: `AWS4-HMAC-SHA256 Credential=test/20240101/${MOTO_REGION}/secretsmanager/aws4_request, SignedHeaders=host, Signature=0`
    },
    body: JSON.stringify(body)
  })
  const text = await res.text()
  const json = text === '' ? {} : JSON.parse(text) as Record<string, unknown>
  if (!res.ok) {
    const type = String(json.__type ?? `HTTP${res.status}`)
    throw Object.assign(new Error(`${op}: ${type}`), { name: type.split('#').pop() })
  }
  return json as T
}

export interface MotoSecret {
  Name: string
  ARN: string
  KmsKeyId?: string | null
  Tags?: Array<{ Key: string, Value: string }>
  DeletedDate?: number | null
}

/** Every secret in moto (scheduled deletions included when asked), all pages. */
export async function listAll (endpoint: string, includePlannedDeletion = false): Promise<MotoSecret[]> {
  const all: MotoSecret[] = []
  let token: string | undefined
  do {
    const out = await smCall<{ SecretList?: MotoSecret[], NextToken?: string }>(endpoint, 'ListSecrets', {
      MaxResults: 100, IncludePlannedDeletion: includePlannedDeletion, ...(token !== undefined ? { NextToken: token } : {})
    })
    all.push(...(out.SecretList ?? []))
    token = out.NextToken
  } while (token !== undefined && token !== null && token !== '')
  return all
}

export async function getValue (endpoint: string, id: string): Promise<string> {
  const out = await smCall<{ SecretString: string }>(endpoint, 'GetSecretValue', { SecretId: id })
  return out.SecretString
}
