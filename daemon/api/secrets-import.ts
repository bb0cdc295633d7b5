// POST /secrets/import (`nf-secrets secrets import --from-nextflow`): many secrets into one scope, all or nothing.
// Every entry is checked (name, value, right to write) before the first write; an existing name is skipped unless
// `overwrite`. If a write fails part-way, the ones already made are undone: created ones deleted, overwritten ones
// given back their old value (read sealed in the daemon; it never leaves it). The reply names each imported and each
// skipped secret, never a value.
// Its events come from the store's change feed: one secret.created or secret.updated per secret written, and an
// import undone part-way shows its undoing too (secret.deleted, secret.updated), as any other client may have seen it.
import { nfsError } from '../errors.js'
import { SecretValue } from '../secret-value.js'
import { checkSecretName, checkSecretValue } from '../rules/validate.js'
import { workspaceOf, writableScope } from './secrets.js'
import { ImportSecretsBody, type ImportReply } from '../contract/secrets.js'
import type { SecretsStore } from '../store/secrets-store.js'
import type { AuditLog } from '../store/audit-log.js'
import type { ApiPlugin } from './type-provider.js'

export interface SecretsImportApiOptions {
  store: SecretsStore
  audit: AuditLog
}

const secretsImportApi: ApiPlugin<SecretsImportApiOptions> = async (api, { store, audit }) => {
  api.post('/secrets/import', { schema: { body: ImportSecretsBody } }, async (request) => {
    const body = request.body
    const caller = request.caller
    const scope = writableScope(caller, workspaceOf(store, body.workspace))
    const seen = new Set<string>()
    for (const s of body.secrets) {
      checkSecretName(s.name)
      checkSecretValue(s.value)
      if (seen.has(s.name)) throw nfsError('NFS_ERR_BAD_REQUEST', [`${s.name} is given twice`])
      seen.add(s.name)
    }
    const existing = new Map(store.listSecrets([scope]).map(m => [m.name, m.version]))
    const reply: ImportReply = { scope, imported: [], skipped: [] }
    const undo: Array<() => Promise<unknown>> = []
    try {
      for (const s of body.secrets) {
        const version = existing.get(s.name)
        if (version !== undefined && body.overwrite !== true) {
          reply.skipped.push({ name: s.name, reason: 'exists' })
          continue
        }
        if (version === undefined) {
          const meta = await store.createSecret(scope, s.name, new SecretValue(s.value), caller.user)
          undo.push(async () => await store.deleteSecret(scope, s.name, caller.user, { ifVersion: meta.version }))
          reply.imported.push({ name: s.name, action: 'created', version: meta.version })
        } else {
          const old = store.readValues([{ scope, name: s.name }]).get(`${scope}\0${s.name}`)!
          const meta = await store.updateSecret(scope, s.name, new SecretValue(s.value), caller.user, { ifVersion: version })
          undo.push(async () => await store.updateSecret(scope, s.name, old, caller.user, { ifVersion: meta.version }))
          reply.imported.push({ name: s.name, action: 'updated', version: meta.version })
        }
      }
    } catch (err) {
      for (const fn of undo.reverse()) {
        try {
          await fn()
        } catch (undoErr) {
          request.log.error({ scope, code: (undoErr as { code?: string }).code }, 'import: could not undo a write')
        }
      }
      throw err
    }
    for (const i of reply.imported) {
      await audit.append({ action: i.action === 'created' ? 'secret.create' : 'secret.update', actor: caller.user, scope, name: i.name })
    }
    return reply
  })
}

export default secretsImportApi
