// The `aws` target's sweep lists what this daemon made: the secrets under its prefix tagged with its node.
import { ListSecretsCommand, type SecretListEntry } from '@aws-sdk/client-secrets-manager'
import type { SweepScope } from '../types.js'
import { TAG_HOST, TAG_NODE, tagValue } from './naming.js'
import type { PacedClient } from './paced-client.js'

export interface ListScope {
  prefix: string
  /** this daemon's node name (TAG_NODE) */
  node: string
  /** this host's name (TAG_HOST) */
  host: string
}

/**
 * The secrets this daemon made: tagged with its node. A secret made before node tags (an older daemon) has only the
 * host tag: it is this daemon's if it names this host, as then (they are swept only when their run is over or
 * unknown to the ledger, so a leftover goes once and no new secret is ever made without the node tag).
 */
export async function listOurs (aws: Pick<PacedClient, 'client' | 'call'>, { prefix, node, host }: ListScope, scope: SweepScope): Promise<SecretListEntry[]> {
  const found = new Map<string, SecretListEntry>()
  const list = async (tagKey: string, tagValue: string, ours: (s: SecretListEntry) => boolean): Promise<void> => {
    let token: string | undefined
    do {
      // The filters are prefix matches ANDed key by key, not a key=value pair: the exact check is `ours`.
      const out = await aws.call('ListSecrets', async () => await aws.client.send(new ListSecretsCommand({
        // No tag-value filter for '' (any value of the key): AWS refuses an empty filter value.
        Filters: [{ Key: 'tag-key', Values: [tagKey] }, ...(tagValue !== '' ? [{ Key: 'tag-value' as const, Values: [tagValue] }] : []), { Key: 'name', Values: [prefix] }],
        MaxResults: 100,
        NextToken: token
      })))
      for (const s of out.SecretList ?? []) {
        if (s.Name?.startsWith(prefix) === true && ours(s)) found.set(s.ARN ?? s.Name, s)
      }
      token = out.NextToken
    } while (token !== undefined && token !== '')
  }
  await list(TAG_NODE, node, s => tagValue(s.Tags, TAG_NODE) === node)
  await list(TAG_HOST, host, s => tagValue(s.Tags, TAG_NODE) === undefined && tagValue(s.Tags, TAG_HOST) === host)
  // Nodes gone for good (cluster mode): every node-tagged secret of the prefix is listed and kept when its node is
  // gone. Nobody else sweeps those: a node name that is never used again has no daemon left to sweep its own.
  const gone = scope.goneNode
  if (gone !== undefined) {
    await list(TAG_NODE, '', s => {
      const n = tagValue(s.Tags, TAG_NODE)
      return n !== undefined && n !== node && gone(n)
    })
  }
  return [...found.values()]
}
