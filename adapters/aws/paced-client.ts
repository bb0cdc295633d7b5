// The `aws` target's SDK client: every call passes one token bucket (measured as close to the wire as possible), one
// count, and our retries (the SDK's own are off so that each attempt is paced and counted). Nothing outside adapters/
// imports @aws-sdk/*.
import { DeleteSecretCommand, SecretsManagerClient, type SecretsManagerClientConfig } from '@aws-sdk/client-secrets-manager'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import { describeError, errorName, isThrottle, withRetry, type RetryPolicy } from './retry.js'
import { TokenBucket } from './throttle.js'

export type AwsCredentials = SecretsManagerClientConfig['credentials']
export type AwsMiddlewareStack = SecretsManagerClient['middlewareStack']

export interface AwsStats {
  /** SDK requests sent, every retry included */
  calls: number
  throttles: number
  retries: number
}

export interface PacedClientOptions {
  region?: string | undefined
  endpoint?: string | undefined
  credentials?: AwsCredentials | undefined
  middleware?: ((stack: AwsMiddlewareStack) => void) | undefined
  rateLimitPerSecond: number
  burst: number
  policy: RetryPolicy
  /** how long resolveAccess waits for the region and for the credentials */
  resolveTimeoutMs: number
  log: Logger
}

export interface PacedClient {
  client: SecretsManagerClient
  /** one SDK call (`what` names it in the logs), paced, counted and retried */
  call: <T>(what: string, fn: () => Promise<T>) => Promise<T>
  /** can this client reach AWS: a region, and credentials found by the chain, each within resolveTimeoutMs */
  resolveAccess: () => Promise<{ ok: true, region: string } | { ok: false, detail: string }>
  /** force-deletes one secret by name or ARN; false when it was already gone */
  forceDelete: (id: string) => Promise<boolean>
  /** the running totals (a copy) */
  stats: () => AwsStats
}

export function createPacedClient (opts: PacedClientOptions): PacedClient {
  const { log, policy, resolveTimeoutMs } = opts
  const bucket = new TokenBucket(opts.rateLimitPerSecond, { burst: opts.burst })
  const counters: AwsStats = { calls: 0, throttles: 0, retries: 0 }
  const client = new SecretsManagerClient({
    region: opts.region,
    endpoint: opts.endpoint,
    credentials: opts.credentials,
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 5000, requestTimeout: 30_000 }
  })
  // The last step before the HTTP handler, so that the pace is measured as close to the wire as possible.
  client.middlewareStack.add((next) => async (args) => {
    await bucket.take()
    counters.calls++
    return await next(args)
  }, { step: 'deserialize', priority: 'low', name: 'nfsPacing' })
  opts.middleware?.(client.middlewareStack)

  async function call<T> (what: string, fn: () => Promise<T>): Promise<T> {
    return await withRetry(fn, policy, {
      onError: (err) => { if (isThrottle(err)) counters.throttles++ },
      onRetry: (err, attempt, delayMs) => {
        counters.retries++
        log.debug({ op: what, attempt, delayMs, error: describeError(err) }, 'retrying AWS call')
      }
    })
  }

  async function resolveAccess (): Promise<{ ok: true, region: string } | { ok: false, detail: string }> {
    const within = async <T>(p: Promise<T>): Promise<T> => await Promise.race([
      p, sleep(resolveTimeoutMs, undefined, { ref: false }).then(() => { throw new Error('timed out') })
    ])
    let region: string
    try {
      region = await within(client.config.region())
    } catch {
      return { ok: false, detail: 'no region (set aws.region or AWS_REGION)' }
    }
    try {
      await within(client.config.credentials())
    } catch {
      return { ok: false, detail: 'no AWS credentials found by the default provider chain' }
    }
    return { ok: true, region }
  }

  async function forceDelete (id: string): Promise<boolean> {
    try {
      await call('DeleteSecret', async () => await client.send(new DeleteSecretCommand({ SecretId: id, ForceDeleteWithoutRecovery: true })))
      return true
    } catch (err) {
      if (errorName(err) === 'ResourceNotFoundException') return false
      throw err
    }
  }

  return { client, call, resolveAccess, forceDelete, stats: () => ({ ...counters }) }
}
