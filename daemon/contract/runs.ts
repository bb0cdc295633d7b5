// The runs routes' contract: what POST /runs and the routes of one run accept, and what they answer.
import { Type } from '@sinclair/typebox'
import type { RunRecord, TargetName } from '../types.js'

const Name = Type.String({ minLength: 1, maxLength: 100 })
const SlurmJobId = Type.String({ pattern: '^[0-9]+(_[0-9]+)?$', maxLength: 40 })

export const CreateRunBody = Type.Object({
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
  slurmJobId: Type.Optional(SlurmJobId),
  command: Type.Optional(Type.Array(Type.String({ maxLength: 65536 }), { minItems: 1, maxItems: 4096 })),
  env: Type.Optional(Type.Record(Type.String({ maxLength: 1024 }), Type.String({ maxLength: 131072 }))),
  cols: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
  rows: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 }))
}, { additionalProperties: false })
export const SlurmJobBody = Type.Object({ jobId: SlurmJobId }, { additionalProperties: false })
export const RunIdParams = Type.Object({ id: Type.String({ maxLength: 64 }) })
export const ListRunsQuery = Type.Object({ all: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false'), Type.Literal('1'), Type.Literal('0')])) }, { additionalProperties: false })
export const FinishBody = Type.Object({
  exitCode: Type.Optional(Type.Integer({ minimum: 0, maximum: 255 })),
  signal: Type.Optional(Type.String({ pattern: '^SIG[A-Z0-9]+$', maxLength: 16 }))
}, { additionalProperties: false })

/** POST /runs: what the wrapper needs to start Nextflow (`env`), and the names placed, never a value. */
export interface CreatedRun {
  runId: string
  sessionId: string
  env: Record<string, string>
  secrets: string[]
  targets: TargetName[]
}

/** What the API shows of a run: the ledger record without anything a caller should not see. */
export type RunView = Omit<RunRecord, 'version'>

/** GET /runs/:id: the run, and the node answering for its end (cluster mode: null while its node is gone, not yet adopted). */
export type RunDetail = RunView & { owner: string | null }
