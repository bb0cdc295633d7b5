// Where the master key comes from (SPEC section 2) and how it is checked.
// User mode: <state>/master.key, generated on first start. System mode: $CREDENTIALS_DIRECTORY/master-key
// (systemd LoadCredential=), else /etc/nf-secretsd/master.key; never generated, because a root daemon that
// silently made a new key would orphan every secret encrypted under the one the admin meant to install.
// A key file holds 32 random bytes as base64 (44 characters) or hex (64), a trailing newline allowed.
import { constants, promises as fsp } from 'node:fs'
import { dirname, join } from 'node:path'
import { isCoded, nfsError } from '../errors.js'
import { generateKey, KEY_BYTES, keyId } from './crypto.js'
import { readJsonFile, writeFileAtomic } from './atomic-file.js'

export const DEFAULT_SYSTEM_KEY_FILE = '/etc/nf-secretsd/master.key'
export const CREDENTIAL_NAME = 'master-key'

export interface LoadKeyOptions {
  mode: 'user' | 'system'
  stateDir: string
  /** system mode: the key file when no credential is present (default /etc/nf-secretsd/master.key); user mode: overrides <state>/master.key */
  keyFile?: string
  /** the caller passes process.env.CREDENTIALS_DIRECTORY; it is not read from the environment here */
  credentialsDirectory?: string
  /** default <stateDir>/store.json; read only for its keyId, to finish an interrupted rotation */
  storePath?: string
}

export interface LoadedKey {
  key: Buffer
  /** the file the key was read from */
  source: string
  /** the file rotate-key replaces (differs from source when the key came from $CREDENTIALS_DIRECTORY) */
  keyFile: string
  generated: boolean
  /** an interrupted rotate-key was finished while loading */
  recovered: boolean
}

/** Side file of a rotation in progress: the new key waits here until the store is re-encrypted under it. */
export function pendingKeyPath (keyFile: string): string {
  return `${keyFile}.rotating`
}

export function encodeKey (key: Buffer): string {
  return key.toString('base64') + '\n'
}

export function makeKeyHint (file: string): string {
  return `create one with: install -d -m 700 ${dirname(file)} && (umask 077; head -c32 /dev/urandom | base64 > ${file})`
}

/** Parse the text of a key file; NFS_ERR_KEY naming the file on anything but exactly 32 bytes of base64 or hex. */
export function parseKey (text: string, file: string): Buffer {
  const t = text.trim()
  let key: Buffer | null = null
  if (/^[0-9a-fA-F]{64}$/.test(t)) key = Buffer.from(t, 'hex')
  else if (/^[A-Za-z0-9+/]{43}=$/.test(t)) key = Buffer.from(t, 'base64')
  if (key?.length !== KEY_BYTES) {
    throw nfsError('NFS_ERR_KEY', [file, `it must hold ${KEY_BYTES} random bytes as base64 or hex; ${makeKeyHint(file)}`])
  }
  return key
}

/**
 * Read and check one key file: a regular file owned by us or root, no access for others. `groupReadable`
 * allows group bits, for systemd credentials whose mode systemd itself chooses in a private directory.
 */
export async function readKeyFile (file: string, groupReadable = false): Promise<Buffer> {
  let fh
  try {
    fh = await fsp.open(file, constants.O_RDONLY | constants.O_NOFOLLOW)
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'EIO'
    if (code === 'ENOENT') throw nfsError('NFS_ERR_KEY', [file, `it does not exist; ${makeKeyHint(file)}`], err)
    if (code === 'ELOOP') throw nfsError('NFS_ERR_KEY', [file, 'it is a symbolic link; use the file itself'], err)
    throw nfsError('NFS_ERR_KEY', [file, `it cannot be opened (${code})`], err)
  }
  try {
    const st = await fh.stat()
    if (!st.isFile()) throw nfsError('NFS_ERR_KEY', [file, 'it is not a regular file'])
    const uid = process.getuid?.() ?? 0
    if (st.uid !== uid && st.uid !== 0) throw nfsError('NFS_ERR_KEY', [file, `it is owned by uid ${st.uid}, not by uid ${uid} or root`])
    const perm = st.mode & 0o777
    if ((perm & (groupReadable ? 0o007 : 0o077)) !== 0) {
      throw nfsError('NFS_ERR_KEY', [file, `its mode is ${perm.toString(8).padStart(4, '0')}; it must be 0600 (chmod 600 ${file})`])
    }
    return parseKey(await fh.readFile('utf8'), file)
  } finally {
    await fh.close()
  }
}

async function exists (file: string): Promise<boolean> {
  return await fsp.lstat(file).then(() => true, () => false)
}

/** keyId recorded in the store file, or null when there is none (missing or unreadable: the store's open reports that). */
async function storeKeyId (storePath: string): Promise<string | null> {
  try {
    const raw = await readJsonFile<{ keyId?: unknown }>(storePath)
    return typeof raw?.keyId === 'string' ? raw.keyId : null
  } catch {
    return null
  }
}

/**
 * Finish or discard a rotate-key that stopped midway. rotate-key writes the new key to the side file, then the
 * store under the new key, then renames the side file over the key file. So a side file whose key wrote the
 * store means "finish the rename"; a side file whose key did not means the store was never touched: drop it.
 */
async function recoverRotation (keyFile: string, source: string, storePath: string): Promise<boolean> {
  const side = pendingKeyPath(keyFile)
  if (!await exists(side)) return false
  const sideKey = await readKeyFile(side)
  const stored = await storeKeyId(storePath)
  if (stored === keyId(sideKey)) {
    if (source !== keyFile) {
      throw nfsError('NFS_ERR_KEY', [source, `a rotate-key was interrupted: the store uses the key in ${side}; run mv ${side} ${keyFile} and restart the service`])
    }
    try {
      await fsp.rename(side, keyFile)
      const dh = await fsp.open(dirname(keyFile), constants.O_RDONLY | constants.O_DIRECTORY)
      await dh.sync().finally(async () => await dh.close())
    } catch (err) {
      throw nfsError('NFS_ERR_KEY', [keyFile, `could not finish an interrupted rotate-key; run mv ${side} ${keyFile}`], err)
    }
    return true
  }
  if (stored === null || !await exists(keyFile) || stored === keyId(await readKeyFile(keyFile))) {
    await fsp.unlink(side).catch(() => {})
  }
  return false
}

export async function loadKey (opts: LoadKeyOptions): Promise<LoadedKey> {
  const storePath = opts.storePath ?? join(opts.stateDir, 'store.json')
  let keyFile: string
  let source: string
  let fromCredential = false
  if (opts.mode === 'user') {
    keyFile = opts.keyFile ?? join(opts.stateDir, 'master.key')
    source = keyFile
  } else {
    keyFile = opts.keyFile ?? DEFAULT_SYSTEM_KEY_FILE
    const cred = opts.credentialsDirectory !== undefined && opts.credentialsDirectory !== '' ? join(opts.credentialsDirectory, CREDENTIAL_NAME) : null
    fromCredential = cred !== null && await exists(cred)
    source = fromCredential && cred !== null ? cred : keyFile
  }
  const recovered = await recoverRotation(keyFile, source, storePath)
  if (opts.mode === 'user' && !await exists(keyFile)) {
    const stored = await storeKeyId(storePath)
    if (stored !== null) {
      throw nfsError('NFS_ERR_KEY', [keyFile, `it is missing but ${storePath} was encrypted with key id ${stored}; restore that key file`])
    }
    await fsp.mkdir(opts.stateDir, { recursive: true, mode: 0o700 })
    try {
      // noClobber: two daemons starting at once must not each write their own key; the loser reads the winner's.
      await writeFileAtomic(keyFile, encodeKey(generateKey()), 0o600, { noClobber: true })
      return { key: await readKeyFile(keyFile), source, keyFile, generated: true, recovered }
    } catch (err) {
      const raced = isCoded(err, 'NFS_ERR_STORAGE') && (err.cause as { code?: string } | undefined)?.code === 'EEXIST'
      if (!raced) throw err
    }
  }
  return { key: await readKeyFile(source, fromCredential), source, keyFile, generated: false, recovered }
}

/**
 * check-config's look at the key (issue 17): read and validated as a start would (owner, mode, 32 bytes), never
 * written, generated or recovered. A user-mode key that does not exist yet, beside no store, is fine: the first start
 * makes it. Anything a start would refuse is the same NFS_ERR_KEY (exit 78).
 */
export async function checkKey (opts: LoadKeyOptions): Promise<{ source: string, present: boolean }> {
  const storePath = opts.storePath ?? join(opts.stateDir, 'store.json')
  if (opts.mode === 'user') {
    const keyFile = opts.keyFile ?? join(opts.stateDir, 'master.key')
    if (!await exists(keyFile)) {
      const stored = await storeKeyId(storePath)
      if (stored !== null) throw nfsError('NFS_ERR_KEY', [keyFile, `it is missing but ${storePath} was encrypted with key id ${stored}; restore that key file`])
      return { source: keyFile, present: false }
    }
    await readKeyFile(keyFile)
    return { source: keyFile, present: true }
  }
  const cred = opts.credentialsDirectory !== undefined && opts.credentialsDirectory !== '' ? join(opts.credentialsDirectory, CREDENTIAL_NAME) : null
  const fromCredential = cred !== null && await exists(cred)
  const source = fromCredential && cred !== null ? cred : opts.keyFile ?? DEFAULT_SYSTEM_KEY_FILE
  await readKeyFile(source, fromCredential)
  return { source, present: true }
}
