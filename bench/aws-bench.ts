// AWS figures against moto, through a timing proxy of our own between the daemon and moto (it sees every call the
// daemon makes, when it left and when its answer came back): 10 runs of 20 secrets armed at once with the rate
// limit at 40/s (achieved rate over the configured one, errors reaching a run), then each run revoked alone,
// terminal -> its 20 secrets deleted at moto, against one DeleteSecret round trip of our own through the same proxy.
import { createServer, request, type Server } from 'node:http'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { CreateSecretCommand, DeleteSecretCommand, ListSecretsCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager'
import { startMoto, MOTO_CREDENTIALS, MOTO_REGION } from '../test/helpers/moto.js'
import { callJson, startDaemon } from './daemon.js'
import { prepareLaunchDir } from './nextflow-files.js'
import { ratio, type Figure } from './report.js'
import { seedState, userSecretNames } from './seed.js'
import { median, nowMs, summarize } from './stats.js'
import { userInfo } from 'node:os'

interface Call { op: string, sent: number, answered: number, status: number }

/** A pass-through HTTP proxy that records each call's operation (X-Amz-Target) and times. */
async function timingProxy (upstream: string): Promise<{ url: string, calls: Call[], close: () => Promise<void> }> {
  const up = new URL(upstream)
  const calls: Call[] = []
  const server: Server = createServer((req, res) => {
    const call: Call = { op: String(req.headers['x-amz-target'] ?? '').split('.').pop() ?? '', sent: nowMs(), answered: 0, status: 0 }
    const fwd = request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers)
      r.pipe(res)
      r.on('end', () => { call.answered = nowMs(); call.status = r.statusCode ?? 0; calls.push(call) })
    })
    fwd.on('error', () => { res.writeHead(502); res.end() })
    req.pipe(fwd)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const addr = server.address() as { port: number }
  return { url: `http://127.0.0.1:${addr.port}`, calls, close: async () => await new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }) }
}

export interface AwsOptions { dir: string, runs: number, rate: number, /** runs revoked under the clock (the rest are left to moto's end) */ revokes: number }

export async function awsFigures (o: AwsOptions): Promise<Figure[]> {
  const teardowns: Array<() => unknown> = []
  try {
    const moto = await startMoto({ teardown: fn => teardowns.push(fn) })
    const proxy = await timingProxy(moto.endpoint)
    teardowns.push(proxy.close)
    const me = userInfo()
    const d = join(o.dir, 'aws-daemon')
    seedState({ stateDir: join(d, 'state'), runsRoot: join(d, 'runs'), user: me.username, uid: me.uid, gid: me.gid, userSecrets: 20, workspaceSecrets: 0, runs: 0 })
    const daemon = await startDaemon(d, {
      config: { aws: { region: MOTO_REGION, endpoint: proxy.url, rateLimitPerSecond: o.rate } },
      env: { AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey }
    })
    teardowns.push(daemon.stop)
    // The daemon's start-up sweep lists secrets: let it pass before the clock starts.
    await new Promise(resolve => setTimeout(resolve, 1000))
    proxy.calls.length = 0
    const names = userSecretNames(20)
    const replies = await Promise.all(Array.from({ length: o.runs }, async (_, i) => {
      const launchDir = join(o.dir, 'aws-launch', `l${i}`)
      mkdirSync(launchDir, { recursive: true })
      prepareLaunchDir(launchDir)
      return await callJson(daemon.socket, 'POST', '/api/v1/runs', { mode: 'arm', launchDir, targets: ['aws'], only: names }, 120_000)
    }))
    const failed = replies.filter(r => r.status !== 201)
    const creates = proxy.calls.filter(c => c.op === 'CreateSecret').sort((a, b) => a.sent - b.sent)
    const throttled = proxy.calls.filter(c => c.status === 400 || c.status === 429).length
    const spanS = creates.length > 1 ? (creates[creates.length - 1]!.sent - creates[0]!.sent) / 1000 : Number.NaN
    // Every call in the window counts against the limit, not only the creates.
    const all = proxy.calls.filter(c => creates.length > 0 && c.sent >= creates[0]!.sent && c.sent <= creates[creates.length - 1]!.sent)
    const achieved = (all.length - 1) / spanS
    const rateRatio = achieved / o.rate
    const out: Figure[] = [{
      figure: `AWS provision ${o.runs * 20} secrets / ${o.runs} runs, calls/s`,
      value: achieved,
      baselineLabel: 'configured rate',
      baseline: o.rate,
      ratio: rateRatio,
      target: 'ratio >= 0.9, 0 errors to runs',
      met: rateRatio >= 0.9 && failed.length === 0,
      note: `${creates.length} CreateSecret of ${proxy.calls.length} calls; ${failed.length} runs failed; ${throttled} throttled answers (moto does not throttle: this counts the daemon's own overruns only)`
    }]

    // One DeleteSecret round trip through the same proxy: the unit of the revoke target.
    const sm = new SecretsManagerClient({ region: MOTO_REGION, endpoint: proxy.url, credentials: MOTO_CREDENTIALS })
    const rtts: number[] = []
    for (let i = 0; i < 5; i++) {
      await sm.send(new CreateSecretCommand({ Name: `bench-rtt/${i}`, SecretString: 'x' }))
      const t = nowMs()
      await sm.send(new DeleteSecretCommand({ SecretId: `bench-rtt/${i}`, ForceDeleteWithoutRecovery: true }))
      rtts.push(nowMs() - t)
    }
    const rtt = median(rtts)
    const revokes: number[] = []
    const measured = replies.filter(x => x.status === 201).slice(0, o.revokes).map(r => (r.body as { runId: string }).runId)
    for (const runId of measured) {
      const before = proxy.calls.length
      const t0 = nowMs()
      const res = await callJson(daemon.socket, 'DELETE', `/api/v1/runs/${runId}`, undefined, 120_000)
      if (res.status !== 200) throw new Error(`DELETE /runs/${runId} answered ${res.status}`)
      const until = Date.now() + 60_000
      let deletes: Call[] = []
      while (Date.now() < until) {
        deletes = proxy.calls.slice(before).filter(c => c.op === 'DeleteSecret' && c.status === 200)
        if (deletes.length >= 20) break
        await new Promise(resolve => setTimeout(resolve, 5))
      }
      if (deletes.length < 20) throw new Error(`run ${runId}: only ${deletes.length} of 20 secrets deleted`)
      revokes.push(Math.max(...deletes.map(c => c.answered)) - t0)
    }
    let left = 0
    for (const runId of measured) left += (await sm.send(new ListSecretsCommand({ Filters: [{ Key: 'name', Values: [`nf-secrets/${runId}/`] }], MaxResults: 100 }))).SecretList?.length ?? 0
    sm.destroy()
    const s = summarize(revokes)
    const concurrency = 8
    const targetMs = 3 * (20 / concurrency) * rtt
    const rateFloor = (20 / (o.rate / 1.05)) * 1000
    out.push(
      { figure: 'terminal -> 20 AWS secrets deleted p50 ms', value: s.p50, baselineLabel: 'one DeleteSecret RTT', baseline: rtt, ratio: ratio(s.p50, rtt), target: '-', met: null },
      { figure: 'terminal -> 20 AWS secrets deleted p99 ms', value: s.p99, baselineLabel: 'one DeleteSecret RTT', baseline: rtt, ratio: ratio(s.p99, rtt), target: `p99 < 3 x 20/${concurrency} RTT = ${Math.round(targetMs)} ms`, met: s.p99 < targetMs, note: `${s.n} runs; ${left} of their secrets left in moto; the 40/s limit alone puts 20 calls at >= ${Math.round(rateFloor)} ms when the bucket is empty` }
    )
    return out
  } finally {
    for (const fn of teardowns.reverse()) await fn()
  }
}
