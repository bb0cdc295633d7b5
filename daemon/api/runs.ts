// /runs: provision a run (run, arm, launch), list and show runs, report a wrapper's end, tie a run to its Slurm job, revoke.
import { nfsError } from '../errors.js'
import type { TargetName } from '../types.js'
import { CreateRunBody, FinishBody, ListRunsQuery, RunIdParams, SlurmJobBody, type RunDetail } from '../contract/runs.js'
import type { RunService } from '../runs/service.js'
import type { PtyHost } from '../pty/host.js'
import type { ApiPlugin } from './type-provider.js'

export interface RunsApiOptions {
  runs: RunService
  /** launched runs (`mode: launch`); absent where the daemon launches nothing */
  pty?: Pick<PtyHost, 'launch'>
  /** the node answering for a run's end (`owner` in runs show, CLUSTER.md); null: its node left, not yet adopted */
  ownerOf: (runId: string, host: string) => string | null
}

// Registered only where the daemon has a run lifecycle: without one there is no /runs route (404), rather than a route
// that answers with a target's error code.
const runsApi: ApiPlugin<RunsApiOptions> = async (api, { runs, pty, ownerOf }) => {
  api.post('/runs', { schema: { body: CreateRunBody } }, async (request, reply) => {
    const body = request.body
    if (body.mode === 'launch' && (body.command === undefined || body.command.length === 0)) throw nfsError('NFS_ERR_BAD_REQUEST', ['mode launch needs a command'])
    const req = { ...body, targets: body.targets as TargetName[] | undefined }
    // A launched run is provisioned and started by the PTY host, which also undoes the run if the start fails.
    if (body.mode === 'launch' && pty === undefined) throw nfsError('NFS_ERR_LAUNCH_FAILED', ['launched runs are not enabled in this daemon'])
    const created = body.mode === 'launch' ? await pty!.launch(request.caller, req) : await runs.create(request.caller, req)
    return reply.code(201).send(created)
  })

  api.get('/runs', { schema: { querystring: ListRunsQuery } }, async (request) => {
    const { all } = request.query
    return await runs.list(request.caller, all === 'true' || all === '1')
  })

  api.get('/runs/:id', { schema: { params: RunIdParams } }, async (request): Promise<RunDetail> => {
    const run = await runs.get(request.caller, request.params.id)
    return { ...run, owner: ownerOf(run.runId, run.host) }
  })

  api.post('/runs/:id/finish', { schema: { params: RunIdParams, body: FinishBody } }, async (request) => {
    return await runs.finish(request.caller, request.params.id, request.body)
  })

  // `nf-secrets sbatch`: the run armed before the submission is tied to the job sbatch gave back.
  api.post('/runs/:id/slurm-job', { schema: { params: RunIdParams, body: SlurmJobBody } }, async (request) => {
    return await runs.bindSlurmJob(request.caller, request.params.id, request.body.jobId)
  })

  api.delete('/runs/:id', { schema: { params: RunIdParams } }, async (request) => {
    return await runs.revoke(request.caller, request.params.id)
  })
}

export default runsApi
