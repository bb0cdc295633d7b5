// The IAM policy templates (policies/*.json) and their renderer. The templates are plain IAM documents with
// `${Placeholder}` strings, so an admin can read them as they are; rendering walks the parsed JSON and fills
// strings, so no parameter can break out of its string into the document's structure.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { nfsError } from '../daemon/errors.js'

export interface PolicyParams {
  /** 12-digit AWS account id */
  account?: string
  region?: string
  /** secret name prefix, default `nf-secrets/` */
  prefix?: string
  /** name of the Batch execution role (instance-role only) */
  executionRole?: string
  /** a KMS key ARN, or a bare key id that is expanded with the account and region */
  kmsKey?: string
}

export interface PolicyInfo { name: string, description: string }

const POLICIES: readonly PolicyInfo[] = [
  { name: 'execution-role', description: 'AWS Batch execution role: read the run secrets for valueFrom (attach with AmazonECSTaskExecutionRolePolicy)' },
  { name: 'instance-role', description: 'ECS instance role of the compute environment: read and list run secrets, pass the execution role' },
  { name: 'launcher', description: 'nf-secretsd itself: create, tag, describe and delete secrets under the prefix, list secrets' }
]

const DEFAULT_PREFIX = 'nf-secrets/'
const KMS_PLACEHOLDER = '${KmsKeyArn}'
// Which user-facing parameter fills each placeholder, for the "missing parameter" error.
const PARAM_OF: Record<string, string> = {
  Account: 'account', Region: 'region', Prefix: 'prefix', ExecutionRoleName: 'executionRole', KmsKeyArn: 'kmsKey'
}

const CHECKS: Array<[keyof PolicyParams, RegExp, string]> = [
  ['account', /^\d{12}$/, 'a 12-digit AWS account id'],
  ['region', /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/, 'an AWS region such as eu-west-1'],
  ['prefix', /^[A-Za-z0-9/_+=.@-]{1,256}$/, 'characters of a secret name (A-Z a-z 0-9 / _ + = . @ -)'],
  ['executionRole', /^[\w+=,.@-]{1,64}$/, 'an IAM role name (not an ARN)'],
  ['kmsKey', /^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)\/[\w/+=.@-]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/, 'a KMS key ARN or key id']
]

export function listPolicies (): PolicyInfo[] {
  return POLICIES.map((p) => ({ ...p }))
}

/**
 * Finds a template next to this module (running from source, policies/render.ts) or, compiled to
 * dist/policies/render.js, in the package's own policies/ two levels up.
 */
export function templatePath (name: string, moduleUrl: string = import.meta.url): string {
  const here = dirname(fileURLToPath(moduleUrl))
  const candidates = [join(here, `${name}.json`), join(here, '..', '..', 'policies', `${name}.json`)]
  const found = candidates.find((p) => existsSync(p))
  if (found === undefined) throw nfsError('NFS_ERR_POLICY_NOT_FOUND', [name])
  return found
}

export function loadTemplate (name: string): unknown {
  if (!POLICIES.some((p) => p.name === name)) throw nfsError('NFS_ERR_POLICY_NOT_FOUND', [name])
  return JSON.parse(readFileSync(templatePath(name), 'utf8'))
}

/** The placeholder values, validated; `KmsKeyArn` is absent when no key was given. */
export function placeholderValues (params: PolicyParams): Record<string, string> {
  for (const [key, re, what] of CHECKS) {
    const v = params[key]
    if (v !== undefined && v !== '' && !re.test(v)) throw nfsError('NFS_ERR_BAD_REQUEST', [`${key} must be ${what}`])
  }
  const values: Record<string, string> = { Prefix: params.prefix === undefined || params.prefix === '' ? DEFAULT_PREFIX : params.prefix }
  if (params.account) values.Account = params.account
  if (params.region) values.Region = params.region
  if (params.executionRole) values.ExecutionRoleName = params.executionRole
  if (params.kmsKey) {
    values.KmsKeyArn = params.kmsKey.startsWith('arn:')
      ? params.kmsKey
      : `arn:aws:kms:${params.region ?? '*'}:${params.account ?? '*'}:key/${params.kmsKey}`
  }
  return values
}

function fill (node: unknown, values: Record<string, string>): unknown {
  if (typeof node === 'string') {
    return node.replace(/\$\{(\w+)\}/g, (_m, key: string) => {
      const v = values[key]
      if (v === undefined) throw nfsError('NFS_ERR_BAD_REQUEST', [`missing parameter ${PARAM_OF[key] ?? key}`])
      return v
    })
  }
  if (Array.isArray(node)) return node.map((n) => fill(n, values))
  if (typeof node === 'object' && node !== null) {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, fill(v, values)]))
  }
  return node
}

/**
 * Pure: fills a parsed template. Statements that name `${KmsKeyArn}` exist only for a customer managed key
 * and are dropped when none is given (Secrets Manager's own aws/secretsmanager key needs no grant).
 */
export function renderTemplate (template: unknown, params: PolicyParams): Record<string, unknown> {
  const values = placeholderValues(params)
  const doc = template as { Statement?: unknown[] }
  const statements = (doc.Statement ?? []).filter((s) => values.KmsKeyArn !== undefined || !JSON.stringify(s).includes(KMS_PLACEHOLDER))
  return fill({ ...doc, Statement: statements }, values) as Record<string, unknown>
}

/** Renders one named policy. Throws NFS_ERR_POLICY_NOT_FOUND or NFS_ERR_BAD_REQUEST (a missing or bad parameter). */
export function renderPolicy (name: string, params: PolicyParams): Record<string, unknown> {
  return renderTemplate(loadTemplate(name), params)
}
