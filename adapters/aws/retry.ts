// Which AWS failures are worth another attempt, and the backoff between attempts. Errors are told apart by
// their name, code and $metadata only: messages differ between AWS, moto and SDK versions and are not a contract.
import { setTimeout as sleep } from 'node:timers/promises'

export interface RetryPolicy {
  /** attempts in all, the first included */
  attempts: number
  baseMs: number
  capMs: number
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 8, baseMs: 100, capMs: 5000 }

const THROTTLE_NAMES = new Set([
  'ThrottlingException', 'TooManyRequestsException', 'Throttling', 'ThrottledException',
  'RequestLimitExceeded', 'RequestThrottled', 'RequestThrottledException'
])
const TRANSIENT_NAMES = new Set([
  'TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'InternalServiceError', 'InternalFailure',
  'ServiceUnavailable', 'ServiceUnavailableException'
])
// Node's codes for a connection that broke or never formed ("socket hang up" is ECONNRESET).
const CONNECTION_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN'])

interface AwsishError {
  name?: unknown
  code?: unknown
  $fault?: unknown
  $metadata?: { httpStatusCode?: unknown }
}

function fields (err: unknown): AwsishError {
  return typeof err === 'object' && err !== null ? err as AwsishError : {}
}

export function errorName (err: unknown): string {
  const name = fields(err).name
  return typeof name === 'string' ? name : 'Error'
}

export function httpStatus (err: unknown): number | undefined {
  const status = fields(err).$metadata?.httpStatusCode
  return typeof status === 'number' ? status : undefined
}

export function isThrottle (err: unknown): boolean {
  return THROTTLE_NAMES.has(errorName(err)) || httpStatus(err) === 429
}

export function isRetryable (err: unknown): boolean {
  if (isThrottle(err) || TRANSIENT_NAMES.has(errorName(err))) return true
  const f = fields(err)
  if (typeof f.code === 'string' && CONNECTION_CODES.has(f.code)) return true
  const status = httpStatus(err)
  return f.$fault === 'server' || (status !== undefined && status >= 500)
}

/** A short, value-free description of an AWS failure for error messages and logs. */
export function describeError (err: unknown): string {
  const f = fields(err)
  const parts = [errorName(err)]
  if (typeof f.code === 'string' && f.code !== parts[0]) parts.push(f.code)
  const status = httpStatus(err)
  if (status !== undefined) parts.push(`HTTP ${status}`)
  return parts.join(' ')
}

/** "Full jitter": a uniform pick between 0 and the capped exponential, so that retrying clients spread out. */
export function backoffMs (attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(policy.capMs, policy.baseMs * 2 ** attempt))
}

export interface RetryHooks {
  /** every failed attempt, retried or not */
  onError?: (err: unknown) => void
  /** just before sleeping ahead of attempt number `attempt` (1 is the first retry) */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void
}

export async function withRetry<T> (fn: () => Promise<T>, policy: RetryPolicy, hooks: RetryHooks = {}): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn()
    } catch (err) {
      hooks.onError?.(err)
      if (attempt + 1 >= policy.attempts || !isRetryable(err)) throw err
      const delay = backoffMs(attempt, policy)
      hooks.onRetry?.(err, attempt + 1, delay)
      await sleep(delay)
    }
  }
}
