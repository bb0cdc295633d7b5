// The shape of store.json and the checks it must pass before the daemon trusts it. Shared by the store and
// rotate-key, which both read the file whole and verify every sealed value before they change anything.
import { nfsError } from '../errors.js'
import { ROLES } from '../types.js'
import type { Role, Scope, SecretMeta, Workspace } from '../types.js'
import { isSealed, keyId, open } from './crypto.js'
import type { Sealed } from './crypto.js'

export const STORE_FORMAT = 1

export interface SecretRecord extends SecretMeta {
  sealed: Sealed
}

export interface StoreData {
  format: typeof STORE_FORMAT
  /** which key sealed the values (crypto.keyId), so a wrong key is named as such rather than as corruption */
  keyId: string
  secrets: SecretRecord[]
  workspaces: Workspace[]
}

export function emptyStore (id: string): StoreData {
  return { format: STORE_FORMAT, keyId: id, secrets: [], workspaces: [] }
}

/** Map key for readValues and lookups. NUL cannot occur in a scope or a name. */
export function entryKey (scope: string, name: string): string {
  return `${scope}\0${name}`
}

// A last guard, looser than the API's validation: it only keeps malformed pairs out of the file and the AAD.
const SCOPE_RE = /^(?:workspace|user):[^\0\s/]{1,256}$/
const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{1,99}$/

export function isValidEntry (scope: unknown, name: unknown): scope is Scope {
  return typeof scope === 'string' && typeof name === 'string' && SCOPE_RE.test(scope) && NAME_RE.test(name)
}

export function checkEntry (scope: Scope, name: string): void {
  if (!isValidEntry(scope, name)) throw nfsError('NFS_ERR_BAD_REQUEST', ['malformed secret scope or name'])
}

const isString = (v: unknown): v is string => typeof v === 'string'
const isVersion = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1
const isRole = (v: unknown): v is Role => (ROLES as readonly unknown[]).includes(v)

function isRoleMap (v: unknown): v is Record<string, Role> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every(isRole)
}

function checkSecret (r: unknown): string | null {
  if (typeof r !== 'object' || r === null) return 'a secret record is not an object'
  const s = r as Record<string, unknown>
  if (!isValidEntry(s.scope, s.name)) return 'a secret record has a malformed scope or name'
  const where = `secret ${String(s.scope)}/${String(s.name)}`
  if (![s.createdAt, s.createdBy, s.updatedAt, s.updatedBy].every(isString)) return `${where} has malformed metadata`
  if (s.lastUsed !== null && !isString(s.lastUsed)) return `${where} has a malformed lastUsed`
  if (!isVersion(s.version)) return `${where} has a malformed version`
  if (!isSealed(s.sealed)) return `${where} has a malformed sealed value`
  return null
}

function checkWorkspace (r: unknown): string | null {
  if (typeof r !== 'object' || r === null) return 'a workspace record is not an object'
  const w = r as Record<string, unknown>
  if (!isString(w.name) || w.name === '') return 'a workspace record has no name'
  if (!isRoleMap(w.members) || !isRoleMap(w.groups)) return `workspace ${w.name} has malformed members or groups`
  if (!isString(w.createdAt) || !isString(w.createdBy) || !isVersion(w.version)) return `workspace ${w.name} has malformed metadata`
  return null
}

/** Check the structure of a parsed store.json; NFS_ERR_STORE_UNREADABLE naming the file and the first problem. */
export function validateStore (raw: unknown, file: string): StoreData {
  const fail = (why: string): never => { throw nfsError('NFS_ERR_STORE_UNREADABLE', [file, why]) }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail('it is not a store object')
  const d = raw as Record<string, unknown>
  if (d.format !== STORE_FORMAT) return fail(`unknown format ${JSON.stringify(d.format)}`)
  if (!isString(d.keyId) || !Array.isArray(d.secrets) || !Array.isArray(d.workspaces)) return fail('keyId, secrets or workspaces is missing')
  const seen = new Set<string>()
  for (const s of d.secrets as unknown[]) {
    const why = checkSecret(s)
    if (why !== null) return fail(why)
    const rec = s as SecretRecord
    const k = entryKey(rec.scope, rec.name)
    if (seen.has(k)) return fail(`secret ${rec.scope}/${rec.name} appears twice`)
    seen.add(k)
  }
  const names = new Set<string>()
  for (const w of d.workspaces as unknown[]) {
    const why = checkWorkspace(w)
    if (why !== null) return fail(why)
    const name = (w as Workspace).name
    if (names.has(name)) return fail(`workspace ${name} appears twice`)
    names.add(name)
  }
  return raw as StoreData
}

/**
 * Decrypt every sealed value once and drop the plaintext: the key is right and no entry was altered or moved.
 * A store written under another key is NFS_ERR_KEY; a value that fails under the right key is tampering or
 * corruption, NFS_ERR_STORE_UNREADABLE. Both name the file and never a value.
 */
export function verifyStore (data: StoreData, key: Buffer, file: string): void {
  verifyKeyId(data, key, file)
  for (const s of data.secrets) verifySecret(s, key, file)
}

/** The store's key id is the loaded key's: NFS_ERR_KEY naming the file otherwise (verifyStore's first step). */
export function verifyKeyId (data: StoreData, key: Buffer, file: string): void {
  const id = keyId(key)
  if (data.keyId !== id) {
    throw nfsError('NFS_ERR_KEY', [file, `it was encrypted with key id ${data.keyId} but the key loaded has id ${id}`])
  }
}

/** One record's sealed value decrypts under `key` (plaintext dropped): NFS_ERR_STORE_UNREADABLE naming it otherwise. */
export function verifySecret (s: SecretRecord, key: Buffer, file: string): void {
  try {
    open(key, s.scope, s.name, s.sealed)
  } catch (err) {
    throw nfsError('NFS_ERR_STORE_UNREADABLE', [file, `secret ${s.scope}/${s.name} fails authentication (altered or moved)`], err)
  }
}

export function toMeta (r: SecretRecord): SecretMeta {
  return {
    name: r.name,
    scope: r.scope,
    createdAt: r.createdAt,
    createdBy: r.createdBy,
    updatedAt: r.updatedAt,
    updatedBy: r.updatedBy,
    lastUsed: r.lastUsed,
    version: r.version
  }
}

/** A copy the caller may not use to reach into the store's memory. */
export function copyWorkspace (w: Workspace): Workspace {
  return { ...w, members: { ...w.members }, groups: { ...w.groups } }
}

// The same last guard for workspaces, shared by the file and etcd stores: the API checks names more strictly first.
const WORKSPACE_RE = /^[^\0\s/]{1,256}$/

export function guardWorkspaceName (name: string): void {
  if (typeof name !== 'string' || !WORKSPACE_RE.test(name)) throw nfsError('NFS_ERR_BAD_REQUEST', ['malformed workspace name'])
}

export function guardMemberName (who: string): void {
  if (typeof who !== 'string' || who === '' || who.includes('\0')) throw nfsError('NFS_ERR_BAD_REQUEST', ['malformed member name'])
}

/**
 * The workspace with `who`'s role in `field` (a user's in members, a group's in groups) set, or taken away when `role`
 * is null (NFS_ERR_MEMBER_NOT_FOUND when they have none there), one version on: a new record, `cur` is left as it is.
 */
export function withRole (cur: Workspace, field: 'members' | 'groups', who: string, role: Role | null): Workspace {
  const map = { ...cur[field] }
  if (role === null) {
    if (!Object.hasOwn(map, who)) throw nfsError('NFS_ERR_MEMBER_NOT_FOUND', [who, cur.name])
    delete map[who]
  } else {
    // defineProperty, not `map[who] =`: a member named `__proto__` would set the object's prototype and add nobody.
    Object.defineProperty(map, who, { value: role, enumerable: true, writable: true, configurable: true })
  }
  return { ...cur, [field]: map, version: cur.version + 1 }
}

/** Swap one secret record for another (or drop it): the CAS step, failing if the record moved on meanwhile. */
export function casSecret (data: StoreData, expected: SecretRecord | null, next: SecretRecord | null, scope: Scope, name: string): StoreData {
  const i = data.secrets.findIndex(s => s.scope === scope && s.name === name)
  const current = i === -1 ? null : data.secrets[i]
  if ((current?.version ?? null) !== (expected?.version ?? null)) {
    throw nfsError('NFS_ERR_CONFLICT', [`secret ${scope}/${name} changed concurrently`])
  }
  const secrets = data.secrets.slice()
  if (i === -1 && next !== null) secrets.push(next)
  else if (next === null) secrets.splice(i, 1)
  else secrets[i] = next
  return { ...data, secrets }
}

/** The same for a workspace. */
export function casWorkspace (data: StoreData, expected: Workspace | null, next: Workspace | null): StoreData {
  const name = expected?.name ?? next?.name ?? ''
  const i = data.workspaces.findIndex(w => w.name === name)
  const current = i === -1 ? null : data.workspaces[i]
  if ((current?.version ?? null) !== (expected?.version ?? null)) {
    throw nfsError('NFS_ERR_CONFLICT', [`workspace ${name} changed concurrently`])
  }
  const workspaces = data.workspaces.slice()
  if (i === -1 && next !== null) workspaces.push(next)
  else if (next === null) workspaces.splice(i, 1)
  else workspaces[i] = next
  return { ...data, workspaces }
}
