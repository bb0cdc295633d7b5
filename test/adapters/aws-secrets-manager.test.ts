// The aws target against moto's server over real HTTP. Every assertion reads moto directly (smCall), not
// through the target. Every call the target makes is recorded and, at the end, checked against the rendered
// `launcher` policy: the policy and the adapter cannot drift apart.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { createAwsTarget, type AwsTargetOptions } from '../../adapters/aws-secrets-manager.js'
import type { TargetRun } from '../../adapters/types.js'
import { SecretValue } from '../../daemon/secret-value.js'
import { renderPolicy } from '../../policies/render.js'
import { startFaultProxy } from '../helpers/fault-proxy.js'
import { waitFor } from '../helpers/wait.js'
import { isAllowed, permissionsFor, type PolicyDocument, type RecordedCall } from '../helpers/iam-eval.js'
import { MOTO_ACCOUNT, MOTO_CREDENTIALS, MOTO_REGION, getValue, listAll, smCall, startMoto, type MotoSecret } from '../helpers/moto.js'
import { recordCalls } from '../helpers/record-calls.js'
import { requireMoto } from '../helpers/requires.js'

const KMS_KEY = `arn:aws:kms:${MOTO_REGION}:${MOTO_ACCOUNT}:key/6f1e2d3c-aaaa-bbbb-cccc-0123456789ab`
requireMoto(t)
const moto = await startMoto(t)
const calls = new Map<string, RecordedCall[]>()
const logLines: string[] = []
const logger = pino({ level: 'debug' }, new Writable({ write (chunk, _enc, cb) { logLines.push(String(chunk)); cb() } }))
const valuesSeen: string[] = []

function target (t: { teardown (fn: () => unknown): void }, extra: Partial<AwsTargetOptions> = {}): ReturnType<typeof createAwsTarget> {
  const prefix = extra.prefix ?? 'nf-secrets/'
  const list = calls.get(prefix) ?? []
  calls.set(prefix, list)
  const tgt = createAwsTarget({
    region: MOTO_REGION,
    endpoint: moto.endpoint,
    credentials: MOTO_CREDENTIALS,
    host: 'login-1',
    logger,
    middleware: recordCalls(list),
    retry: { baseMs: 5, capMs: 50 },
    ...extra
  })
  t.teardown(async () => await tgt.close())
  return tgt
}

let runSeq = 0
function run (names: string[], over: Partial<TargetRun> = {}): TargetRun {
  runSeq++
  return {
    runId: `Run${String(runSeq).padStart(11, '0')}`,
    sessionId: '3f0c7a52-0d1e-4b8e-9a53-5b0f7f1c2d3e',
    user: 'alice',
    uid: 1001,
    gid: 1001,
    workspace: 'genomics',
    launchDir: '/home/alice/pipeline',
    host: 'login-1',
    names,
    ...over
  }
}

/** Distinct values per test, remembered so that the last test can look for them in every log line. */
function values (names: string[]): Map<string, SecretValue> {
  const m = new Map<string, SecretValue>()
  for (const n of names) {
    const v = `v-${n}-${randomBytes(6).toString('hex')}-é✓`
    valuesSeen.push(v)
    m.set(n, new SecretValue(v))
  }
  return m
}

const ofRun = (secrets: MotoSecret[], runId: string): MotoSecret[] => secrets.filter((s) => s.Name.includes(`/${runId}/`))
const tagsOf = (s: MotoSecret): Record<string, string> => Object.fromEntries((s.Tags ?? []).map((x) => [x.Key, x.Value]))

t.beforeEach(async () => { await moto.reset() })

t.test('provision places each value under <prefix><runId>/<NAME> with the tags, KMS key and ARNs', async (t) => {
  const tgt = target(t, { kmsKeyId: KMS_KEY, tags: { team: 'bio', 'nf-secretsd:host': 'spoofed' } })
  const r = run(['TOKEN', 'DB_PASS', 'API_KEY'])
  const secrets = values(r.names)
  const placed = await tgt.provision(r, secrets)
  t.same(placed.env, { NF_SECRETS_AWS_PREFIX: `nf-secrets/${r.runId}/` })
  const inMoto = await listAll(moto.endpoint)
  t.same(inMoto.map((s) => s.Name).sort(), ['API_KEY', 'DB_PASS', 'TOKEN'].map((n) => `nf-secrets/${r.runId}/${n}`))
  t.same(placed.refs.map((x) => x.name), ['API_KEY', 'DB_PASS', 'TOKEN'], 'refs sorted by name')
  for (const ref of placed.refs) {
    const s = inMoto.find((x) => x.Name === `nf-secrets/${r.runId}/${ref.name}`)!
    t.equal(ref.ref, s.ARN, `${ref.name}: the ref is the ARN`)
    t.equal(await getValue(moto.endpoint, s.ARN), secrets.get(ref.name)!.reveal(), `${ref.name}: the value`)
    t.same(tagsOf(s), {
      team: 'bio', 'nf-secretsd:run': r.runId, 'nf-secretsd:host': 'login-1', 'nf-secretsd:node': 'login-1', 'nf-secretsd:user': 'alice', 'nf-secretsd:workspace': 'genomics'
    }, 'our tags win over configured ones')
    const described = await smCall<{ KmsKeyId?: string }>(moto.endpoint, 'DescribeSecret', { SecretId: s.ARN })
    t.equal(described.KmsKeyId, KMS_KEY, 'the KMS key id is passed through')
  }
  t.equal(tgt.stats().calls, 3)
  t.same((await tgt.status()).usable, true)
})

t.test('a custom prefix gives Seqera\'s tower-<id>/<NAME> scheme; no KMS key means none is sent', async (t) => {
  const tgt = target(t, { prefix: 'tower-' })
  const r = run(['TOKEN'])
  const placed = await tgt.provision(r, values(r.names))
  t.equal(placed.env.NF_SECRETS_AWS_PREFIX, `tower-${r.runId}/`)
  const [s] = await listAll(moto.endpoint)
  t.equal(s?.Name, `tower-${r.runId}/TOKEN`)
  const described = await smCall<{ KmsKeyId?: string }>(moto.endpoint, 'DescribeSecret', { SecretId: s!.ARN })
  t.notOk(described.KmsKeyId, 'moto answers null')
  t.throws(() => createAwsTarget({ prefix: 'bad*prefix', host: 'h', logger }), { code: 'NFS_ERR_CONFIG' })
})

t.test('revoke force-deletes every name, counts what is gone as done, and needs no memory but run.names', async (t) => {
  const r = run(['A1', 'B2', 'C3'])
  await target(t).provision(r, values(r.names))
  const other = run(['A1'])
  await target(t).provision(other, values(other.names))
  // A fresh target, as after a daemon restart: only the ledger's run record is known.
  const after = target(t)
  await after.revoke(r)
  t.same(ofRun(await listAll(moto.endpoint, true), r.runId), [], 'gone, not merely scheduled for deletion')
  t.equal(ofRun(await listAll(moto.endpoint), other.runId).length, 1, 'another run is untouched')
  await after.revoke(r)
  await after.revoke(run(['NEVER_MADE']))
  t.pass('revoking again, or what never existed, succeeds')
})

t.test('revoke fails with NFS_ERR_REVOKE_FAILED while secrets remain', async (t) => {
  const r = run(['A1', 'B2'])
  await target(t).provision(r, values(r.names))
  const proxy = await startFaultProxy(t, moto.endpoint)
  proxy.setRule((op, body) => op === 'DeleteSecret' && String(body.SecretId).endsWith('/B2') ? 'denied' : undefined)
  const tgt = target(t, { endpoint: proxy.endpoint })
  await t.rejects(tgt.revoke(r), { code: 'NFS_ERR_REVOKE_FAILED' })
  t.same(ofRun(await listAll(moto.endpoint), r.runId).map((s) => s.Name), [`nf-secrets/${r.runId}/B2`])
  proxy.setRule(undefined)
  await tgt.revoke(r)
  t.same(ofRun(await listAll(moto.endpoint, true), r.runId), [], 'the retry completes it')
})

t.test('sweep deletes secrets of terminal and unknown runs tagged with this host, and nothing else', async (t) => {
  const tgt = target(t)
  const [done, lost, live] = [run(['X1', 'X2']), run(['Y1']), run(['Z1'])]
  for (const r of [done, lost, live]) await tgt.provision(r, values(r.names))
  const elsewhere = run(['W1'])
  await target(t, { host: 'login-10' }).provision(elsewhere, values(elsewhere.names))
  // Ours by tag but outside the prefix: the launcher policy could not delete it, so the sweep must not try.
  await smCall(moto.endpoint, 'CreateSecret', {
    Name: `manual/${lost.runId}/Y1`, SecretString: 'x', Tags: [{ Key: 'nf-secretsd:host', Value: 'login-1' }, { Key: 'nf-secretsd:run', Value: lost.runId }]
  })
  const asked: string[] = []
  const removed = await tgt.sweep((id) => {
    asked.push(id)
    return id === done.runId ? 'terminal' : id === live.runId ? 'live' : 'unknown'
  })
  t.equal(removed, 3)
  t.same([...asked].sort(), [done.runId, live.runId, lost.runId].sort(), 'asked once per run of this host')
  const left = (await listAll(moto.endpoint, true)).map((s) => s.Name).sort()
  t.same(left, [`manual/${lost.runId}/Y1`, `nf-secrets/${elsewhere.runId}/W1`, `nf-secrets/${live.runId}/Z1`].sort())
  t.equal(await tgt.sweep(() => 'live'), 0)
})

t.test('sweep is scoped by node, not host: two daemons on one host sweep only their own secrets', async (t) => {
  // Two daemons on login-2 (two nodes of a cluster, or two state dirs): each sees the other's fresh run as unknown
  // (not yet in its view of the ledger, or in another ledger). By host tag each would sweep the other's secrets.
  const [a, b] = [target(t, { host: 'login-2', node: 'node-a' }), target(t, { host: 'login-2', node: 'node-b' })]
  const [ofA, ofB] = [run(['A1'], { host: 'login-2' }), run(['B1'], { host: 'login-2' })]
  await a.provision(ofA, values(ofA.names))
  await b.provision(ofB, values(ofB.names))
  // A secret of an older daemon (host tag only): its host's daemons still sweep it.
  const old = run(['O1'], { host: 'login-2' })
  await smCall(moto.endpoint, 'CreateSecret', {
    Name: `nf-secrets/${old.runId}/O1`, SecretString: 'x', Tags: [{ Key: 'nf-secretsd:host', Value: 'login-2' }, { Key: 'nf-secretsd:run', Value: old.runId }]
  })
  const tagged = (await listAll(moto.endpoint)).find((s) => s.Name === `nf-secrets/${ofA.runId}/A1`)!
  t.equal(tagsOf(tagged)['nf-secretsd:node'], 'node-a', 'a secret names the node that made it')
  const askedA: string[] = []
  t.equal(await a.sweep((id) => { askedA.push(id); return 'unknown' }), 2, 'a removes its own and the old one')
  t.same(askedA.sort(), [ofA.runId, old.runId].sort(), 'a never asks about b\'s run')
  const left = (await listAll(moto.endpoint, true)).map((s) => s.Name)
  t.ok(left.includes(`nf-secrets/${ofB.runId}/B1`), 'b\'s secret is untouched by a\'s sweep')
  t.notOk(left.includes(`nf-secrets/${ofA.runId}/A1`))
  t.equal(await b.sweep(() => 'unknown'), 1, 'b removes its own')
  t.same((await listAll(moto.endpoint, true)).filter((s) => s.Name.includes(ofB.runId) || s.Name.includes(old.runId)), [])
})

t.test('a node gone for good: a live node sweeps its leftovers, never a live run\'s, never a live node\'s', async (t) => {
  const [a, x, b] = [target(t, { host: 'login-3', node: 'node-a' }), target(t, { host: 'login-9', node: 'node-x' }), target(t, { host: 'login-3', node: 'node-b' })]
  const [ended, live, ofB] = [run(['X1'], { host: 'login-9' }), run(['X2'], { host: 'login-9' }), run(['B1'], { host: 'login-3' })]
  await x.provision(ended, values(ended.names))
  await x.provision(live, values(live.names))
  await b.provision(ofB, values(ofB.names))
  const liveness = (id: string): 'live' | 'terminal' | 'unknown' => id === live.runId ? 'live' : id === ended.runId ? 'terminal' : 'unknown'
  t.equal(await a.sweep(liveness), 0, 'without the gone nodes: only a\'s own (none)')
  const asked: string[] = []
  t.equal(await a.sweep(liveness, { goneNode: n => { asked.push(n); return n === 'node-x' } }), 1, 'with them: the ended run\'s secret of the gone node')
  const left = (await listAll(moto.endpoint, true)).map((s) => s.Name)
  t.notOk(left.includes(`nf-secrets/${ended.runId}/X1`), 'the gone node\'s leftover of an ended run is swept')
  t.ok(left.includes(`nf-secrets/${live.runId}/X2`), 'a live run\'s secret stays, whichever node made it')
  t.ok(left.includes(`nf-secrets/${ofB.runId}/B1`), 'a live node\'s secret stays (its own sweep decides)')
  t.notOk(asked.includes('node-a'), 'its own node is not asked about')
})

t.test('sweep pages through ListSecrets', async (t) => {
  const tgt = target(t, { rateLimitPerSecond: 200 })
  const r = run(Array.from({ length: 105 }, (_, i) => `S${i}`))
  await tgt.provision(r, values(r.names))
  t.equal(await tgt.sweep(() => 'unknown'), 105)
  t.same(await listAll(moto.endpoint, true), [])
})

t.test('a left-over name and a name scheduled for deletion are replaced', async (t) => {
  const r = run(['OLD', 'PENDING', 'FRESH'])
  await smCall(moto.endpoint, 'CreateSecret', { Name: `nf-secrets/${r.runId}/OLD`, SecretString: 'stale' })
  await smCall(moto.endpoint, 'CreateSecret', { Name: `nf-secrets/${r.runId}/PENDING`, SecretString: 'stale' })
  await smCall(moto.endpoint, 'DeleteSecret', { SecretId: `nf-secrets/${r.runId}/PENDING`, RecoveryWindowInDays: 7 })
  const secrets = values(r.names)
  await target(t).provision(r, secrets)
  const inMoto = await listAll(moto.endpoint, true)
  t.equal(inMoto.length, 3)
  for (const s of inMoto) {
    t.notOk(s.DeletedDate, `${s.Name} is not scheduled for deletion`)
    t.equal(await getValue(moto.endpoint, s.ARN), secrets.get(s.Name.split('/').pop()!)!.reveal())
    t.equal(tagsOf(s)['nf-secretsd:run'], r.runId)
  }
})

t.test('AWS\'s InvalidRequestException for a name scheduled for deletion takes the same path', async (t) => {
  const r = run(['PENDING'])
  const id = `nf-secrets/${r.runId}/PENDING`
  await smCall(moto.endpoint, 'CreateSecret', { Name: id, SecretString: 'stale' })
  await smCall(moto.endpoint, 'DeleteSecret', { SecretId: id, RecoveryWindowInDays: 7 })
  const proxy = await startFaultProxy(t, moto.endpoint)
  let answered = 0
  proxy.setRule((op) => op === 'CreateSecret' && answered++ === 0 ? 'invalid-request' : undefined)
  const secrets = values(r.names)
  await target(t, { endpoint: proxy.endpoint }).provision(r, secrets)
  t.equal(proxy.byOp().DescribeSecret, 1, 'looked the name up before deleting it')
  const [s] = await listAll(moto.endpoint, true)
  t.notOk(s?.DeletedDate, 'not scheduled for deletion')
  t.equal(await getValue(moto.endpoint, id), secrets.get('PENDING')!.reveal())
})

t.test('provision is all or nothing: a failure part-way leaves nothing in moto', async (t) => {
  const proxy = await startFaultProxy(t, moto.endpoint)
  proxy.setRule((op, body) => op === 'CreateSecret' && String(body.Name).endsWith('/M_LAST') ? 'denied' : undefined)
  const tgt = target(t, { endpoint: proxy.endpoint, maxConcurrency: 1 })
  const r = run(['A_FIRST', 'B_SECOND', 'M_LAST', 'Z_NEVER'])
  const secrets = values(r.names)
  const err = await tgt.provision(r, secrets).then(() => undefined, (e: unknown) => e as Error & { code?: string, cause?: unknown })
  t.equal(err?.code, 'NFS_ERR_PROVISION_FAILED')
  t.equal((err?.cause as Error | undefined)?.name, 'AccessDeniedException', 'the SDK error is the cause')
  t.ok((proxy.byOp().CreateSecret ?? 0) >= 3, 'the names before it were created first')
  t.same(await listAll(moto.endpoint, true), [], 'and removed again')
  const text = `${err?.message ?? ''} ${JSON.stringify(err)}`
  for (const v of secrets.values()) t.notOk(text.includes(v.reveal()), 'no value in the error')
})

t.test('provision can be repeated: same values keep the secrets, a changed value replaces them', async (t) => {
  const tgt = target(t)
  const r = run(['ONE', 'TWO'])
  const first = await tgt.provision(r, values(r.names))
  const again = await tgt.provision(r, new Map([['ONE', new SecretValue(valuesSeen.at(-2)!)], ['TWO', new SecretValue(valuesSeen.at(-1)!)]]))
  t.same(again, first, 'the same placement')
  t.equal((await listAll(moto.endpoint, true)).length, 2)
  const changed = values(r.names)
  await tgt.provision(r, changed)
  const inMoto = await listAll(moto.endpoint, true)
  t.equal(inMoto.length, 2)
  for (const s of inMoto) t.equal(await getValue(moto.endpoint, s.ARN), changed.get(s.Name.split('/').pop()!)!.reveal())
})

t.test('with ready pending (the intent being written) nothing reaches AWS; a refused ready sends nothing at all', async (t) => {
  const tgt = target(t)
  const r = run(['TOKEN', 'DB_PASS'])
  let open!: () => void
  const gate = new Promise<void>(resolve => { open = resolve })
  // A thenable, not a promise: `await` calls its then(), which tells the test the target has reached the gate.
  let waiting = false
  const ready = { then: (ok: () => void, fail: (err: unknown) => void) => { waiting = true; return gate.then(ok, fail) } } as unknown as Promise<void>
  const placing = tgt.provision(r, values(r.names), { ready })
  await waitFor('the target to wait for ready', () => waiting)
  t.same(ofRun(await listAll(moto.endpoint), r.runId), [], 'nothing in moto while the intent is pending')
  open()
  await placing
  t.equal(ofRun(await listAll(moto.endpoint), r.runId).length, 2, 'placed once ready opened')

  const other = run(['TOKEN'])
  const refused = Promise.reject(Object.assign(new Error('disk full'), { code: 'NFS_ERR_STORAGE' }))
  refused.catch(() => {}) // the run manager does the same: the target awaits it later
  await t.rejects(tgt.provision(other, values(other.names), { ready: refused }), { code: 'NFS_ERR_STORAGE' })
  t.same(ofRun(await listAll(moto.endpoint), other.runId), [], 'a failed intent sends nothing')
})

t.test('no region or no credentials: NFS_ERR_TARGET_UNAVAILABLE, status says why', async (t) => {
  const saved = { ...process.env }
  t.teardown(() => { process.env = saved })
  for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k]
  Object.assign(process.env, {
    AWS_CONFIG_FILE: '/nonexistent/aws-config', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials', AWS_EC2_METADATA_DISABLED: 'true'
  })
  const noRegion = target(t, { region: undefined })
  await t.rejects(noRegion.provision(run(['A1']), values(['A1'])), { code: 'NFS_ERR_TARGET_UNAVAILABLE' })
  t.equal((await noRegion.status()).usable, false)
  const noCreds = target(t, { credentials: undefined })
  await t.rejects(noCreds.provision(run(['A1']), values(['A1'])), { code: 'NFS_ERR_TARGET_UNAVAILABLE' })
  t.equal((await noCreds.status()).usable, false)
  t.equal(noCreds.stats().calls, 0, 'nothing was sent')
  await noCreds.close()
  await noCreds.close()
  await t.rejects(noCreds.provision(run(['A1']), values(['A1'])), { code: 'NFS_ERR_TARGET_UNAVAILABLE' }, 'closed')
  t.same(await listAll(moto.endpoint, true), [])
})

t.test('policy consistency: every call made above is allowed by the rendered launcher policy', async (t) => {
  const ops = new Set<string>()
  for (const [prefix, list] of calls) {
    const policy = renderPolicy('launcher', { account: MOTO_ACCOUNT, region: MOTO_REGION, prefix, kmsKey: KMS_KEY }) as unknown as PolicyDocument
    for (const call of list) {
      ops.add(call.op)
      for (const p of permissionsFor(call, MOTO_REGION, MOTO_ACCOUNT)) {
        if (!isAllowed(policy, p.action, p.resource, p.context)) t.fail(`${p.action} on ${p.resource} is not allowed by launcher (${prefix})`)
      }
    }
  }
  t.same([...ops].sort(), ['CreateSecret', 'DeleteSecret', 'DescribeSecret', 'ListSecrets'], 'every operation the adapter uses was exercised')
})

t.test('no value ever reached the log', async (t) => {
  t.ok(logLines.length > 10, 'the target did log')
  const all = logLines.join('')
  t.same(valuesSeen.filter((v) => all.includes(v)), [])
})
