// /runs: provision a run (run, arm, launch), list and show runs, report a wrapper's end, tie a run to its Slurm job, revoke.
import type { FastifyInstance } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { nfsError } from '../errors.js'
import type { TargetName } from '../types.js'

const Name = Type.String({ minLength: 1, maxLength: 100 })
const CreateBody = Type.Object({
  workspace: Type.Optional(Type.String({ maxLength: 200 })),
  launchDir: Type.String({ minLength: 1, maxLength: 4096 }),
  targets: Type.Optional(Type.Array(Type.String({ maxLength: 20 }), { maxItems: 8 })),
  only: Type.Optional(Type.Array(Name, { maxItems: 1000 })),
  // The pipeline's referenced names (least privilege): Nextflow's name shape, so a refusal can name them safely.
  names: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', maxLength: 100 }), { maxItems: 1000 })),
  allowMissing: Type.Optional(Type.Boolean()),
  secretsFile: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  mode: Type.Union([Type.Literal('run'), Type.Literal('arm'), Type.Literal('launch')]),
  ttlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 86400 })),
  slurmJobId: Type.Optional(Type.String({ pattern: '^[0-9]+(_[0-9]+)?$', maxLength: 40 })),
  command: Type.Optional(Type.Array(Type.String({ maxLength: 65536 }), { minItems: 1, maxItems: 4096 })),
  env: Type.Optional(Type.Record(Type.String({ maxLength: 1024 }), Type.String({ maxLength: 131072 }))),
  cols: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
  rows: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 }))
}, { additionalProperties: false })
const SlurmJobBody = Type.Object({ jobId: Type.String({ pattern: '^[0-9]+(_[0-9]+)?$', maxLength: 40 }) }, { additionalProperties: false })
const IdParams = Type.Object({ id: Type.String({ maxLength: 64 }) })
const ListQuery = Type.Object({ all: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false'), Type.Literal('1'), Type.Literal('0')])) }, { additionalProperties: false })
const FinishBody = Type.Object({
  exitCode: Type.Optional(Type.Integer({ minimum: 0, maximum: 255 })),
  signal: Type.Optional(Type.String({ pattern: '^SIG[A-Z0-9]+$', maxLength: 16 }))
}, { additionalProperties: false })

export default async function runsApi (api: FastifyInstance): Promise<void> {
  const { deps } = api
  const runs = (): NonNullable<typeof deps.runs> => {
    if (deps.runs === undefined) throw nfsError('NFS_ERR_TARGET_UNAVAILABLE', ['runs', 'the run lifecycle is not enabled'])
    return deps.runs
  }

  api.post('/runs', { schema: { body: CreateBody } }, async (request, reply) => {
    const body = request.body as Static<typeof CreateBody>
    if (body.mode === 'launch' && (body.command === undefined || body.command.length === 0)) throw nfsError('NFS_ERR_BAD_REQUEST', ['mode launch needs a command'])
    const req = { ...body, targets: body.targets as TargetName[] | undefined }
    // A launched run is provisioned and started by the PTY host, which also undoes the run if the start fails.
    if (body.mode === 'launch' && deps.pty === undefined) throw nfsError('NFS_ERR_LAUNCH_FAILED', ['launched runs are not enabled in this daemon'])
    const created = body.mode === 'launch' ? await deps.pty!.launch(request.caller, req) : await runs().create(request.caller, req)
    return reply.code(201).send(created)
  })

  api.get('/runs', { schema: { querystring: ListQuery } }, async (request) => {
    const { all } = request.query as Static<typeof ListQuery>
    return runs().list(request.caller, all === 'true' || all === '1')
  })

  api.get('/runs/:id', { schema: { params: IdParams } }, async (request) => {
    const run = runs().get(request.caller, (request.params as Static<typeof IdParams>).id)
    // The node answering for the run's end, beside the head's host (CLUSTER.md); null: its node left, not yet adopted.
    return { ...run, owner: deps.cluster !== undefined ? deps.cluster.ownerOf(run.runId) : (deps.node ?? run.host) }
  })

  api.post('/runs/:id/finish', { schema: { params: IdParams, body: FinishBody } }, async (request) => {
    return await runs().finish(request.caller, (request.params as Static<typeof IdParams>).id, request.body as Static<typeof FinishBody>)
  })

  // `nf-secrets sbatch`: the run armed before the submission is tied to the job sbatch gave back.
  api.post('/runs/:id/slurm-job', { schema: { params: IdParams, body: SlurmJobBody } }, async (request) => {
    return await runs().bindSlurmJob(request.caller, (request.params as Static<typeof IdParams>).id, (request.body as Static<typeof SlurmJobBody>).jobId)
  })

  api.delete('/runs/:id', { schema: { params: IdParams } }, async (request) => {
    return await runs().revoke(request.caller, (request.params as Static<typeof IdParams>).id)
  })
}
