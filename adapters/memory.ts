// A target that keeps everything in memory: for unit tests of orchestration only, never the only test of a target.
// Failures can be injected to exercise all-or-nothing and revoke retries.
import { nfsError } from '../daemon/errors.js'
import type { SecretValue } from '../daemon/secret-value.js'
import type { Placement, ProvisionOptions, RunLiveness, Target, TargetRun, TargetStatus } from './types.js'

export interface MemoryTargetOptions {
  /** provision throws for a run whose names include this one */
  failProvisionOn?: string
  /** revoke throws this many times before it succeeds */
  failRevokeTimes?: number
  /** a pause inside provision and revoke, to test what happens meanwhile */
  delayMs?: number
}

export interface MemoryTarget extends Target {
  readonly placed: Map<string, Map<string, string>>
  readonly calls: Array<{ op: 'provision' | 'revoke' | 'sweep', runId?: string }>
  options: MemoryTargetOptions
}

export function createMemoryTarget (options: MemoryTargetOptions = {}): MemoryTarget {
  const placed = new Map<string, Map<string, string>>()
  const calls: MemoryTarget['calls'] = []
  let closed = false
  const pause = async (): Promise<void> => {
    if ((target.options.delayMs ?? 0) > 0) await new Promise(resolve => setTimeout(resolve, target.options.delayMs))
  }
  const target: MemoryTarget = {
    name: 'memory',
    placed,
    calls,
    options,
    async provision (run: TargetRun, secrets: ReadonlyMap<string, SecretValue>, opts: ProvisionOptions = {}): Promise<Placement> {
      await opts.ready
      calls.push({ op: 'provision', runId: run.runId })
      await pause()
      if (target.options.failProvisionOn !== undefined && secrets.has(target.options.failProvisionOn)) {
        placed.delete(run.runId)
        throw nfsError('NFS_ERR_PROVISION_FAILED', ['memory', 'injected failure'])
      }
      placed.set(run.runId, new Map([...secrets].map(([k, v]) => [k, v.reveal()])))
      return { env: {}, refs: [...secrets.keys()].map(name => ({ name, ref: `memory:${run.runId}/${name}` })) }
    },
    async revoke (run: TargetRun): Promise<void> {
      calls.push({ op: 'revoke', runId: run.runId })
      await pause()
      if ((target.options.failRevokeTimes ?? 0) > 0) {
        target.options.failRevokeTimes! -= 1
        throw nfsError('NFS_ERR_REVOKE_FAILED', ['memory', 'injected failure'])
      }
      placed.delete(run.runId)
    },
    async sweep (liveness: (runId: string) => RunLiveness): Promise<number> {
      calls.push({ op: 'sweep' })
      let n = 0
      for (const runId of [...placed.keys()]) {
        if (liveness(runId) !== 'live') { placed.delete(runId); n++ }
      }
      return n
    },
    async status (): Promise<TargetStatus> {
      return { usable: !closed }
    },
    async close (): Promise<void> {
      closed = true
    }
  }
  return target
}
