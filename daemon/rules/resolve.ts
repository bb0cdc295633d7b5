// What a run launched by a user in a workspace gets: every workspace secret, with the user's own secret winning
// where both have the same name. Pure.
import type { Scope, SecretMeta } from '../types.js'

export interface Resolved {
  name: string
  source: 'user' | 'workspace'
  scope: Scope
}

export function userScope (user: string): Scope {
  return `user:${user}`
}

export function workspaceScope (ws: string): Scope {
  return `workspace:${ws}`
}

export function resolveSecrets (userSecrets: SecretMeta[], workspaceSecrets: SecretMeta[]): Resolved[] {
  const byName = new Map<string, Resolved>()
  for (const s of workspaceSecrets) byName.set(s.name, { name: s.name, source: 'workspace', scope: s.scope })
  for (const s of userSecrets) byName.set(s.name, { name: s.name, source: 'user', scope: s.scope })
  return [...byName.values()].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
}
