// Which of the resolved secrets a new run gets (SPEC 11): `only` narrows them, or the names the pipeline references.
// A name that is not there fails here, before anything is placed. Pure.
import { nfsError } from '../errors.js'
import type { Resolved } from '../rules/resolve.js'
import type { Scope } from '../types.js'
import type { CreateRunRequest } from './service.js'

export function chooseSecrets (resolved: Resolved[], req: Pick<CreateRunRequest, 'only' | 'names' | 'allowMissing'>): Resolved[] {
  if (req.only !== undefined && req.only.length > 0) {
    const byName = new Map(resolved.map(r => [r.name, r]))
    const chosen: Resolved[] = []
    for (const name of new Set(req.only)) {
      const r = byName.get(name)
      if (r === undefined) throw nfsError('NFS_ERR_UNKNOWN_SECRET', [JSON.stringify(name.slice(0, 100))])
      chosen.push(r)
    }
    return chosen
  }
  if (req.names === undefined) return resolved
  // Here, not in the CLI: whatever client asks with names, a missing one stops the run before anything is placed.
  const wanted = new Set(req.names)
  const chosen = resolved.filter(r => wanted.has(r.name))
  const have = new Set(chosen.map(r => r.name))
  const missing = [...wanted].filter(n => !have.has(n)).sort()
  if (missing.length > 0 && req.allowMissing !== true) throw nfsError('NFS_ERR_SECRET_MISSING', [missing.join(', ')])
  return chosen
}

/**
 * chooseSecrets(resolveSecrets(...), { only }) found by name instead of by listing both scopes: the user's secret of
 * a name wins over the workspace's, in `only`'s order, each name once. An arm names its secrets with --only, and
 * resolving every secret of the store to keep 20 of them was the largest share of its resolution (issue 18).
 * `has` says whether a scope holds a name. Pure; test/runs/choose-secrets.test.ts holds it to chooseSecrets.
 */
export function chooseNamed (only: readonly string[], has: (scope: Scope, name: string) => boolean, user: Scope, workspace: Scope | null): Resolved[] {
  const chosen: Resolved[] = []
  for (const name of new Set(only)) {
    if (has(user, name)) chosen.push({ name, source: 'user', scope: user })
    else if (workspace !== null && has(workspace, name)) chosen.push({ name, source: 'workspace', scope: workspace })
    else throw nfsError('NFS_ERR_UNKNOWN_SECRET', [JSON.stringify(name.slice(0, 100))])
  }
  return chosen
}
