// The targets this daemon offers, from its config. `memory` is a test fake: offered only when the config names it.
import type { Target } from '../adapters/types.js'
import { createHpcTarget } from '../adapters/hpc.js'
import { createAwsTarget, type AwsTarget } from '../adapters/aws-secrets-manager.js'
import { createMemoryTarget } from '../adapters/memory.js'
import type { Config } from './config.js'
import type { Logger } from './logger.js'
import type { TargetName } from './types.js'

export interface BuiltTargets {
  targets: Map<TargetName, Target>
  aws: AwsTarget
}

export function buildTargets (config: Config, logger: Logger, host: string, nodeId?: string, knownUsers?: () => Iterable<string>): BuiltTargets {
  const targets = new Map<TargetName, Target>()
  targets.set('hpc', createHpcTarget({
    runsRoot: config.hpc.runsRoot,
    privileged: config.mode === 'system',
    logger,
    host,
    ...(nodeId !== undefined ? { nodeId } : {}),
    // The name a live node judges gone for good (CLUSTER.md "Shared runs root"); the marker keeps the node id too.
    ...(config.cluster !== undefined ? { clusterNode: config.cluster.nodeName } : {}),
    ...(knownUsers !== undefined ? { knownUsers } : {})
  }))
  // Always offered: without a region or credentials it says so in status and refuses at provision time.
  const aws = createAwsTarget({
    ...(config.aws.region !== null ? { region: config.aws.region } : {}),
    ...(config.aws.endpoint !== null ? { endpoint: config.aws.endpoint } : {}),
    ...(config.aws.kmsKeyId !== null ? { kmsKeyId: config.aws.kmsKeyId } : {}),
    prefix: config.aws.prefix,
    tags: { ...config.aws.tags },
    maxConcurrency: config.aws.maxConcurrency,
    rateLimitPerSecond: config.aws.rateLimitPerSecond,
    burst: config.aws.burst,
    host,
    // The sweep's scope: what this daemon made (CLUSTER.md "Shared runs root": a node never sweeps because it does
    // not know a run). The node name in a cluster, which a node keeps across a lost state dir; else the state dir's id.
    ...(config.cluster !== undefined ? { node: config.cluster.nodeName } : nodeId !== undefined ? { node: nodeId } : {}),
    logger
  })
  targets.set('aws', aws)
  const named = new Set<string>([...config.runs.defaultTargets, ...config.watch.flatMap(w => w.targets ?? [])])
  if (named.has('memory')) targets.set('memory', createMemoryTarget())
  return { targets, aws }
}
