// GET /policies and /policies/:name: the IAM templates of policies/, rendered for an account. Read-only and free of
// secrets, so every caller may use them; the renderer is pure and does all the validation.
import type { Static } from '@sinclair/typebox'
import { nfsError } from '../errors.js'
import type { Config } from '../config.js'
import { listPolicies, renderPolicy, type PolicyParams } from '../../policies/render.js'
import { PolicyNameParams, RenderQuery, type PolicyInfo } from '../contract/policies.js'
import type { ApiPlugin } from './type-provider.js'

/**
 * The renderer's parameters: what the caller gave, else the daemon's own `aws.prefix` and `aws.region`, so that a
 * policy rendered by a daemon matches the names that daemon creates. Pure.
 */
export function renderParams (query: Static<typeof RenderQuery>, aws: Pick<Config['aws'], 'prefix' | 'region'>): PolicyParams {
  const given = (v: string | undefined): string | undefined => v === undefined || v === '' ? undefined : v
  const params: PolicyParams = { prefix: given(query.prefix) ?? aws.prefix }
  const region = given(query.region) ?? aws.region ?? undefined
  if (region !== undefined) params.region = region
  const account = given(query.account)
  if (account !== undefined) params.account = account
  const executionRole = given(query.executionRole)
  if (executionRole !== undefined) params.executionRole = executionRole
  const kmsKey = given(query.kmsKey)
  if (kmsKey !== undefined) params.kmsKey = kmsKey
  return params
}

export interface PoliciesApiOptions {
  /** the daemon's own prefix and region, the defaults of a rendering */
  aws: Pick<Config['aws'], 'prefix' | 'region'>
}

const policiesApi: ApiPlugin<PoliciesApiOptions> = async (api, { aws }) => {
  api.get('/policies', async (): Promise<PolicyInfo[]> => listPolicies())

  api.get('/policies/:name', { schema: { params: PolicyNameParams, querystring: RenderQuery } }, async (request) => {
    const { name } = request.params
    // Checked here so that the error quotes a bounded, escaped name rather than whatever was in the URL.
    if (!listPolicies().some(p => p.name === name)) throw nfsError('NFS_ERR_POLICY_NOT_FOUND', [JSON.stringify(name.slice(0, 64))])
    return renderPolicy(name, renderParams(request.query, aws))
  })
}

export default policiesApi
