// The `aws` target: one Secrets Manager secret per name under `<prefix><runId>/`. Every SDK call passes one token
// bucket and one concurrency gate shared by all runs, and is retried here (the SDK's own retries are off so that
// each attempt is paced and counted: aws/paced-client.ts). Nothing outside adapters/ imports @aws-sdk/*.
import { CreateSecretCommand, DescribeSecretCommand, type SecretListEntry } from '@aws-sdk/client-secrets-manager'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import { nfsError } from '../daemon/errors.js'
import type { SecretValue } from '../daemon/secret-value.js'
import type { SecretRef } from '../daemon/types.js'
import type { Placement, ProvisionOptions, RunLiveness, SweepScope, Target, TargetRun, TargetStatus } from './types.js'
import { DEFAULT_PREFIX, TAG_RUN, buildTags, isValidPrefix, requestToken, runIdFromName, runPrefix, secretName, tagValue } from './aws/naming.js'
import { listOurs } from './aws/list-ours.js'
import { createPacedClient, type AwsCredentials, type AwsMiddlewareStack, type AwsStats } from './aws/paced-client.js'
import { DEFAULT_RETRY, backoffMs, describeError, errorName, type RetryPolicy } from './aws/retry.js'
import { Semaphore } from './aws/throttle.js'

export type { AwsCredentials, AwsMiddlewareStack, AwsStats }

export interface AwsTargetOptions {
  region?: string
  /** a local emulator such as moto */
  endpoint?: string
  prefix?: string
  kmsKeyId?: string
  tags?: Record<string, string>
  maxConcurrency?: number
  rateLimitPerSecond?: number
  /** calls that may leave back to back after a quiet spell (a run's revoke); 1 paces every call */
  burst?: number
  /** this host's name, written in a tag (for people reading AWS; the sweep goes by `node`) */
  host: string
  /**
   * this daemon's name, written in a tag so that the sweep only touches what this daemon made: the cluster node name
   * (unique in a cluster), or the state dir's node id on one node (two daemons on one host are two nodes). Default:
   * the host.
   */
  node?: string
  logger: Logger
  /** explicit credentials (tests); otherwise the SDK's default chain */
  credentials?: AwsCredentials
  /** lets tests add SDK middleware, e.g. to record every call */
  middleware?: (stack: AwsMiddlewareStack) => void
  retry?: Partial<RetryPolicy>
  /** how long status() and provision() wait for the region and credentials to resolve */
  resolveTimeoutMs?: number
}

export interface AwsTarget extends Target {
  stats (): AwsStats
}

// Rounds of "exists: force-delete, then create again" before giving up. AWS finishes a forced deletion
// asynchronously, so the create right after it may still see the old name for a moment.
const CONFLICT_ROUNDS = 5

export function createAwsTarget (opts: AwsTargetOptions): AwsTarget {
  const prefix = opts.prefix ?? DEFAULT_PREFIX
  if (!isValidPrefix(prefix)) {
    throw nfsError('NFS_ERR_CONFIG', ['aws.prefix', 'use 1 to 256 of the characters A-Z a-z 0-9 / _ + = . @ -'])
  }
  const log = opts.logger.child({ target: 'aws' })
  const policy: RetryPolicy = { ...DEFAULT_RETRY, ...opts.retry }
  const gate = new Semaphore(opts.maxConcurrency ?? 8)
  const node = opts.node ?? opts.host
  let closed = false
  const aws = createPacedClient({
    region: opts.region,
    endpoint: opts.endpoint,
    credentials: opts.credentials,
    middleware: opts.middleware,
    rateLimitPerSecond: opts.rateLimitPerSecond ?? 40,
    burst: opts.burst ?? 1,
    policy,
    resolveTimeoutMs: opts.resolveTimeoutMs ?? 3000,
    log
  })
  const { client, call, resolveAccess, forceDelete } = aws

  /** After a failed create: is the name taken (left over, or scheduled for deletion), gone meanwhile, or neither? */
  async function conflictKind (err: unknown, id: string): Promise<'exists' | 'gone' | 'none'> {
    const name = errorName(err)
    if (name === 'ResourceExistsException') return 'exists'
    // AWS says InvalidRequestException for a name scheduled for deletion, and for other invalid requests too.
    if (name !== 'InvalidRequestException') return 'none'
    try {
      await call('DescribeSecret', async () => await client.send(new DescribeSecretCommand({ SecretId: id })))
      return 'exists'
    } catch (e) {
      if (errorName(e) === 'ResourceNotFoundException') return 'gone'
      throw err
    }
  }

  async function createOne (run: TargetRun, name: string, value: SecretValue): Promise<string> {
    const id = secretName(prefix, run.runId, name)
    for (let round = 0; ; round++) {
      try {
        const out = await call('CreateSecret', async () => await client.send(new CreateSecretCommand({
          Name: id,
          SecretString: value.reveal(),
          ClientRequestToken: requestToken(run.runId, name),
          Description: `nf-secretsd run ${run.runId}`,
          ...(opts.kmsKeyId !== undefined ? { KmsKeyId: opts.kmsKeyId } : {}),
          Tags: buildTags({ ...run, host: opts.host, node }, opts.tags)
        })))
        return out.ARN ?? id
      } catch (err) {
        const kind = round < CONFLICT_ROUNDS ? await conflictKind(err, id) : 'none'
        if (kind === 'none') throw err
        log.info({ runId: run.runId, secret: id, round }, 'name is taken or scheduled for deletion: force-deleting it')
        if (kind === 'exists') await forceDelete(id)
        await sleep(backoffMs(round + 2, policy))
      }
    }
  }

  /** Deletes every name of the run; resolves with how many could not be deleted and the first failure. */
  async function deleteAll (runId: string, names: readonly string[]): Promise<{ failed: number, first?: unknown }> {
    const results = await Promise.allSettled(names.map(async (n) => await gate.run(async () => await forceDelete(secretName(prefix, runId, n)))))
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    return { failed: failures.length, first: failures[0]?.reason }
  }

  function assertOpen (): void {
    if (closed) throw nfsError('NFS_ERR_TARGET_UNAVAILABLE', ['aws', 'the target is closed'])
  }

  async function provision (run: TargetRun, secrets: ReadonlyMap<string, SecretValue>, opts: ProvisionOptions = {}): Promise<Placement> {
    assertOpen()
    // Credentials and region are looked up while the intent is written; nothing goes to AWS before it is on disk.
    const access = await resolveAccess()
    await opts.ready
    if (!access.ok) throw nfsError('NFS_ERR_TARGET_UNAVAILABLE', ['aws', access.detail])
    const names = [...secrets.keys()].sort()
    const refs: SecretRef[] = []
    let failure: unknown
    let failedName = ''
    await Promise.all(names.map(async (name) => await gate.run(async () => {
      if (failure !== undefined) return // one failure dooms the run: start nothing new
      try {
        refs.push({ name, ref: await createOne(run, name, secrets.get(name)!) })
      } catch (err) {
        if (failure === undefined) { failure = err; failedName = name }
      }
    })))
    if (failure !== undefined) {
      // Every name, not just the ones that answered: a create whose response was lost may still have happened.
      const cleanup = await deleteAll(run.runId, names)
      const reason = `${describeError(failure)} creating ${secretName(prefix, run.runId, failedName)}`
      if (cleanup.failed > 0) {
        log.error({ runId: run.runId, remaining: cleanup.failed, error: describeError(cleanup.first) },
          'could not remove the secrets of a failed provision; revoke must retry')
      }
      log.warn({ runId: run.runId, error: describeError(failure) }, 'aws provision failed and was rolled back')
      throw nfsError('NFS_ERR_PROVISION_FAILED', ['aws', reason], failure)
    }
    refs.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
    log.info({ runId: run.runId, count: refs.length }, 'aws secrets provisioned')
    return { env: { NF_SECRETS_AWS_PREFIX: runPrefix(prefix, run.runId) }, refs }
  }

  async function revoke (run: TargetRun): Promise<void> {
    assertOpen()
    const result = await deleteAll(run.runId, run.names)
    if (result.failed > 0) {
      throw nfsError('NFS_ERR_REVOKE_FAILED',
        ['aws', `${result.failed} of ${run.names.length} secrets remain (${describeError(result.first)})`], result.first)
    }
    log.info({ runId: run.runId, count: run.names.length }, 'aws secrets revoked')
  }

  async function sweep (liveness: (runId: string) => RunLiveness, scope: SweepScope = {}): Promise<number> {
    assertOpen()
    let found: SecretListEntry[]
    try {
      found = await listOurs(aws, { prefix, node, host: opts.host }, scope)
    } catch (err) {
      throw nfsError('NFS_ERR_REVOKE_FAILED', ['aws', `sweep could not list secrets (${describeError(err)})`], err)
    }
    const seen = new Map<string, RunLiveness>()
    const doomed: string[] = []
    for (const s of found) {
      const runId = tagValue(s.Tags, TAG_RUN) ?? runIdFromName(prefix, s.Name ?? '')
      if (runId === undefined) continue
      if (!seen.has(runId)) seen.set(runId, liveness(runId))
      if (seen.get(runId) !== 'live') doomed.push(s.ARN ?? s.Name!)
    }
    // Deleted after listing, not during it, so that pages do not shift under the listing.
    const results = await Promise.allSettled(doomed.map(async (id) => await gate.run(async () => await forceDelete(id))))
    const removed = results.filter((r) => r.status === 'fulfilled' && r.value).length
    const failed = results.filter((r) => r.status === 'rejected').length
    if (failed > 0) log.warn({ failed }, 'sweep could not delete some orphaned secrets; the next sweep retries')
    if (removed > 0) log.info({ removed }, 'aws orphan sweep removed secrets')
    return removed
  }

  async function status (): Promise<TargetStatus> {
    if (closed) return { usable: false, detail: 'closed' }
    const access = await resolveAccess()
    return access.ok ? { usable: true, detail: `region ${access.region}` } : { usable: false, detail: access.detail }
  }

  async function close (): Promise<void> {
    if (closed) return
    closed = true
    client.destroy()
  }

  return { name: 'aws', provision, revoke, sweep, status, close, stats: aws.stats }
}
