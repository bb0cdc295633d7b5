// SDK middleware for tests: records every Secrets Manager call a target sends (each retry too, since the adapter
// retries outside the SDK), keeping the operation and identifiers only, never a value.
import type { AwsMiddlewareStack } from '../../adapters/aws-secrets-manager.js'
import type { RecordedCall } from './iam-eval.js'

const str = (v: unknown): string | undefined => typeof v === 'string' ? v : undefined

export function recordCalls (into: RecordedCall[]): (stack: AwsMiddlewareStack) => void {
  return (stack) => {
    stack.add((next, context) => async (args) => {
      const input = args.input as Record<string, unknown>
      into.push({
        op: String(context.commandName ?? '').replace(/Command$/, ''),
        name: str(input.Name),
        secretId: str(input.SecretId),
        kmsKeyId: str(input.KmsKeyId),
        tagged: Array.isArray(input.Tags) && input.Tags.length > 0
      })
      return await next(args)
    }, { step: 'initialize', name: 'nfsTestRecordCalls' })
  }
}
