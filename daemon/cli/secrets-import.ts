// `nf-secrets secrets import --from-nextflow [FILE] [-w W] [--overwrite] [--shred]`: move Nextflow's plaintext store
// (a JSON array of {name, value}, NOTES.md 1.3) into the daemon. All or nothing: every entry is checked here first
// with the daemon's own rules (daemon/validate.ts) and each refusal is listed with its reason; then one request
// imports them (the daemon checks again and undoes a part-way failure). A name that exists is skipped unless
// --overwrite. --shred, only once the daemon has answered (its store write is durable by then), overwrites with
// zeros and removes the store file and every `.nf-*.secrets` beside it. No value is ever printed.
import { closeSync, constants, fstatSync, fsyncSync, lstatSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync } from 'node:fs'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { nfsError } from '../errors.js'
import type { SecretMeta } from '../types.js'
import type { ImportReply } from '../contract/secrets.js'
import { checkSecretValue, isValidSecretName } from '../rules/validate.js'
import type { Command, CommandContext } from './args.js'
import { CliError } from './client.js'
import { nxfHome } from './least-privilege.js'
import { safeText } from './output.js'

interface Entry { name: string, value: string }
export interface Refusal { name: string, code: string, reason: string }

/** Nextflow's store path: FILE, else $NXF_SECRETS_FILE (relative to $NXF_HOME, as Nextflow does), else the default. */
export function storePath (file: string | undefined, cwd: string, env: NodeJS.ProcessEnv): string {
  if (file !== undefined) return resolve(cwd, file)
  const home = nxfHome(env)
  const fromEnv = env.NXF_SECRETS_FILE
  if (fromEnv !== undefined && fromEnv !== '') return isAbsolute(fromEnv) ? fromEnv : resolve(home, fromEnv)
  return join(home, 'secrets', 'store.json')
}

/** The entries of a store's text, or a usage error naming what is wrong (never a value). Pure. */
export function parseStore (text: string): Entry[] {
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch {
    throw nfsError('NFS_ERR_USAGE', ['not a Nextflow secrets store: not JSON'])
  }
  if (!Array.isArray(data)) throw nfsError('NFS_ERR_USAGE', ['not a Nextflow secrets store: not a JSON array'])
  return data.map((e, i) => {
    if (typeof e !== 'object' || e === null || typeof (e as Entry).name !== 'string' || typeof (e as Entry).value !== 'string') {
      throw nfsError('NFS_ERR_USAGE', [`not a Nextflow secrets store: entry ${i + 1} is not {"name": string, "value": string}`])
    }
    return { name: (e as Entry).name, value: (e as Entry).value }
  })
}

/** Every entry the daemon would refuse, with the rule it breaks. Pure. */
export function refusals (entries: readonly Entry[]): Refusal[] {
  const out: Refusal[] = []
  const seen = new Set<string>()
  for (const e of entries) {
    const name = JSON.stringify(e.name.slice(0, 100))
    if (!isValidSecretName(e.name)) {
      out.push({ name, code: 'NFS_ERR_INVALID_NAME', reason: 'not a valid name: letters, digits and single underscores, no leading digit, 2 to 100 characters, not starting with __' })
      continue
    }
    if (seen.has(e.name)) out.push({ name, code: 'NFS_ERR_USAGE', reason: 'given twice' })
    seen.add(e.name)
    try {
      checkSecretValue(e.value)
    } catch (err) {
      // The message names the rule and the character class, never the value (validate.ts).
      out.push({ name, code: (err as { code: string }).code, reason: (err as Error).message })
    }
  }
  return out
}

const myUid = (): number | undefined => process.getuid?.()

/**
 * Overwrite a regular file of ours with zeros, flush it, remove it. A symlink is refused (O_NOFOLLOW), and so is a file
 * of another user's (its owner read on the open fd, before a byte is written): a store dir others can write into may
 * hold their files, writable or hard-linked, and --shred is for the caller's own plaintext only.
 */
function shred (path: string): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  try {
    const st = fstatSync(fd)
    if (!st.isFile()) throw nfsError('NFS_ERR_INVALID_PATH', [`${path}: not a regular file`])
    if (st.uid !== myUid()) throw nfsError('NFS_ERR_FORBIDDEN', [`${path} is not yours; nothing of it was shredded`])
    const zeros = Buffer.alloc(Math.min(st.size, 1 << 20))
    for (let off = 0; off < st.size; off += zeros.length) writeSync(fd, zeros, 0, Math.min(zeros.length, st.size - off), off)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  unlinkSync(path)
}

/**
 * The store file and every `.nf-*.secrets` beside it: regular files of the caller's only (a symlink is never followed;
 * another user's file in a shared dir is left alone, and shred() checks the owner again on the fd).
 */
export function shredTargets (store: string): string[] {
  const dir = dirname(store)
  const envFiles = readdirSync(dir).filter(n => /^\.nf-.+\.secrets$/.test(n)).map(n => join(dir, n)).filter(p => {
    const st = lstatSync(p)
    return st.isFile() && st.uid === myUid()
  })
  return [store, ...envFiles.sort()]
}

/**
 * The store's text, read through one fd opened without following a symlink: a regular file of the caller's own.
 * Another user's store is refused before a byte is read, even one left readable (Nextflow itself wants 0600).
 */
function readStore (path: string): string {
  let fd
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EACCES') throw nfsError('NFS_ERR_FORBIDDEN', [`${safeText(path)} is not yours to read`])
    throw nfsError('NFS_ERR_INVALID_PATH', [`${safeText(path)}: ${code === 'ELOOP' ? 'a symlink, not a regular file' : 'no such file'}`])
  }
  try {
    const st = fstatSync(fd)
    if (!st.isFile()) throw nfsError('NFS_ERR_INVALID_PATH', [`${safeText(path)}: not a regular file`])
    if (st.uid !== myUid()) throw nfsError('NFS_ERR_FORBIDDEN', [`${safeText(path)} is not yours (owner uid ${st.uid})`])
    return readFileSync(fd, 'utf8')
  } finally {
    closeSync(fd)
  }
}

async function importCommand (ctx: CommandContext): Promise<number> {
  if (ctx.options['from-nextflow'] !== true) throw new CliError('NFS_ERR_USAGE', 'secrets import needs --from-nextflow (the only source there is)')
  const path = storePath(ctx.args[0], ctx.io.cwd, ctx.io.env)
  const shredding = ctx.options.shred === true
  const entries = parseStore(readStore(path))
  const refused = refusals(entries)
  if (refused.length > 0) {
    if (ctx.global.json) ctx.io.stdout.write(`${JSON.stringify({ imported: [], skipped: [], refused })}\n`)
    else for (const r of refused) ctx.io.stderr.write(`nf-secrets: refused ${safeText(r.name)}: ${safeText(r.reason)} (${r.code})\n`)
    throw new CliError(refused[0]!.code, `${refused.length} of ${entries.length} secret(s) refused (listed above); nothing was imported`)
  }
  const workspace = ctx.global.workspace
  if (shredding && ctx.options.overwrite !== true) {
    // Shredding a value that was not imported would lose it: refused before anything is written.
    const scope = workspace === undefined ? null : `workspace:${workspace}`
    const have = await ctx.client().request<SecretMeta[]>('GET', '/secrets', { query: { workspace: workspace ?? 'personal' } })
    const clash = entries.filter(e => have.some(m => m.name === e.name && (scope === null ? m.scope.startsWith('user:') : m.scope === scope)))
    if (clash.length > 0) throw nfsError('NFS_ERR_CONFLICT', [`${clash.map(e => e.name).join(', ')} exist already; --shred would destroy values that are not imported: add --overwrite, or import without --shred`])
  }
  const reply = await ctx.client().request<ImportReply>('POST', '/secrets/import', {
    body: { secrets: entries, ...(workspace !== undefined ? { workspace } : {}), ...(ctx.options.overwrite === true ? { overwrite: true } : {}) }
  })
  const shredded: string[] = []
  if (shredding) {
    if (reply.skipped.length > 0) throw nfsError('NFS_ERR_CONFLICT', ['some secrets were skipped; nothing was shredded'])
    for (const f of shredTargets(path)) {
      shred(f)
      shredded.push(f)
    }
    try {
      const dfd = openSync(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY)
      try { fsyncSync(dfd) } finally { closeSync(dfd) }
    } catch {
      // the removals stand; only their durability across a crash is not forced
    }
  }
  ctx.out.result({ ...reply, shredded }, () => [
    ...reply.imported.map(i => `imported ${safeText(i.name)} into ${safeText(reply.scope)} (${i.action}, version ${i.version})`),
    ...reply.skipped.map(s => `skipped ${safeText(s.name)}: it exists in ${safeText(reply.scope)} (--overwrite replaces it)`),
    ...shredded.map(f => `shredded ${safeText(f)}`),
    `${reply.imported.length} imported, ${reply.skipped.length} skipped${shredding ? `, ${shredded.length} file(s) shredded` : ''}.`
  ].join('\n'))
  return 0
}

export const secretsImportCommands: Command[] = [
  {
    path: ['secrets', 'import'],
    usage: '--from-nextflow [FILE] [-w W] [--overwrite] [--shred]',
    summary: 'import Nextflow\'s plaintext store (default $NXF_SECRETS_FILE, else ~/.nextflow/secrets/store.json), all or nothing; --shred then removes it and the .nf-*.secrets files beside it',
    options: {
      'from-nextflow': { type: 'boolean', description: 'FILE is in Nextflow\'s store format (the only format there is)' },
      overwrite: { type: 'boolean', description: 'replace a secret you already have, instead of skipping it' },
      shred: { type: 'boolean', description: 'once stored: zero-fill and remove FILE and every .nf-*.secrets beside it' }
    },
    positionals: [0, 1],
    run: importCommand
  }
]
