// A small evaluator of IAM identity policies for the policy consistency test: is an action on a resource
// allowed? It knows Allow and Deny statements, Action/Resource lists with IAM wildcards (`*`, `?`) and
// StringEquals/StringLike conditions against a given context. Anything else (NotAction, NotResource, other
// condition operators) makes it throw, so that a template using them cannot pass by being misread.

export interface PolicyStatement {
  Sid?: string
  Effect: 'Allow' | 'Deny'
  Action?: string | string[]
  Resource?: string | string[]
  Condition?: Record<string, Record<string, string | string[]>>
  [other: string]: unknown
}

export interface PolicyDocument {
  Version: string
  Statement: PolicyStatement[]
}

const list = (v: string | string[] | undefined): string[] => v === undefined ? [] : Array.isArray(v) ? v : [v]

/** IAM wildcard match: `*` any run of characters, `?` one character, everything else literal. */
export function wildcardMatch (pattern: string, value: string, ignoreCase = false): boolean {
  const re = pattern.split('').map((c) => c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\/-]/g, '\\$&')).join('')
  return new RegExp(`^${re}$`, ignoreCase ? 'is' : 's').test(value)
}

function conditionHolds (cond: PolicyStatement['Condition'], context: Record<string, string>): boolean {
  for (const [op, entries] of Object.entries(cond ?? {})) {
    if (op !== 'StringEquals' && op !== 'StringLike') throw new Error(`iam-eval does not know condition operator ${op}`)
    for (const [key, expected] of Object.entries(entries)) {
      const actual = context[key]
      if (actual === undefined) return false
      const ok = list(expected).some((e) => op === 'StringEquals' ? e === actual : wildcardMatch(e, actual))
      if (!ok) return false
    }
  }
  return true
}

function statementMatches (s: PolicyStatement, action: string, resource: string, context: Record<string, string>): boolean {
  for (const k of ['NotAction', 'NotResource', 'NotPrincipal', 'Principal']) {
    if (k in s) throw new Error(`iam-eval does not support ${k}`)
  }
  return list(s.Action).some((a) => wildcardMatch(a, action, true)) &&
    list(s.Resource).some((r) => wildcardMatch(r, resource)) &&
    conditionHolds(s.Condition, context)
}

/** IAM's rule for one identity policy: an explicit Deny wins, then an Allow is needed, else implicit deny. */
export function isAllowed (policy: PolicyDocument, action: string, resource: string, context: Record<string, string> = {}): boolean {
  const matching = policy.Statement.filter((s) => statementMatches(s, action, resource, context))
  if (matching.some((s) => s.Effect === 'Deny')) return false
  return matching.some((s) => s.Effect === 'Allow')
}

/** One Secrets Manager call as the tests record it: the operation and the identifiers, never a value. */
export interface RecordedCall {
  op: string
  name?: string
  secretId?: string
  kmsKeyId?: string
  tagged: boolean
}

export interface Permission { action: string, resource: string, context?: Record<string, string> }

/**
 * What IAM checks for one call, per the Secrets Manager authorization reference: the action on the secret's
 * ARN (a name gets AWS's random 6-character suffix), TagResource as well when a create carries tags, and the KMS
 * actions Secrets Manager performs on the caller's behalf when a customer key is named.
 */
export function permissionsFor (call: RecordedCall, region: string, account: string): Permission[] {
  const arn = (id: string): string => id.startsWith('arn:') ? id : `arn:aws:secretsmanager:${region}:${account}:secret:${id}-AbC123`
  const via = { 'kms:ViaService': `secretsmanager.${region}.amazonaws.com` }
  switch (call.op) {
    case 'ListSecrets':
      return [{ action: 'secretsmanager:ListSecrets', resource: '*' }]
    case 'CreateSecret': {
      const resource = arn(call.name ?? '')
      const out: Permission[] = [{ action: 'secretsmanager:CreateSecret', resource }]
      if (call.tagged) out.push({ action: 'secretsmanager:TagResource', resource })
      if (call.kmsKeyId !== undefined) {
        out.push({ action: 'kms:GenerateDataKey', resource: call.kmsKeyId, context: via },
          { action: 'kms:Decrypt', resource: call.kmsKeyId, context: via })
      }
      return out
    }
    default:
      return [{ action: `secretsmanager:${call.op}`, resource: arn(call.secretId ?? call.name ?? '') }]
  }
}
