// nf-secrets policy list | render: the IAM policy templates, rendered by the daemon (which knows its own prefix and
// region) so that what an admin attaches matches the names that daemon creates.
import type { Command, CommandContext } from './args.js'
import { renderTable } from './output.js'
import type { PolicyInfo } from '../contract/policies.js'

export function policiesTable (rows: PolicyInfo[]): string {
  if (rows.length === 0) return 'No policy templates.\n'
  return renderTable(['NAME', 'DESCRIPTION'], rows.map(p => [p.name, p.description]))
}

/** The query of GET /policies/:name from the command's options; absent options are left to the daemon's defaults. */
export function renderQuery (options: CommandContext['options']): Record<string, string | undefined> {
  const str = (v: unknown): string | undefined => typeof v === 'string' ? v : undefined
  return {
    account: str(options.account),
    region: str(options.region),
    executionRole: str(options['execution-role']),
    prefix: str(options.prefix),
    kmsKey: str(options['kms-key'])
  }
}

export const policyCommands: Command[] = [
  {
    path: ['policy', 'list'],
    usage: '',
    summary: 'the IAM policy templates for the aws target',
    positionals: [0, 0],
    async run (ctx) {
      const rows = await ctx.client().request<PolicyInfo[]>('GET', '/policies')
      ctx.out.result(rows, () => policiesTable(rows))
      return 0
    }
  },
  {
    path: ['policy', 'render'],
    usage: 'NAME --account ID --region R [--execution-role NAME] [--prefix P] [--kms-key ARN]',
    summary: 'print a ready IAM policy document (prefix and region default to the daemon\'s aws config)',
    options: {
      account: { type: 'string', description: 'the AWS account id' },
      region: { type: 'string', description: 'the AWS region (default: the daemon\'s aws.region)' },
      'execution-role': { type: 'string', description: 'the Batch execution role\'s name, for the policies that name it' },
      prefix: { type: 'string', description: 'the secrets\' name prefix (default: the daemon\'s aws.prefix)' },
      'kms-key': { type: 'string', description: 'the KMS key ARN, when the secrets use a key of your account\'s' }
    },
    positionals: [1, 1],
    async run (ctx) {
      const name = ctx.args[0]!
      const doc = await ctx.client().request<Record<string, unknown>>('GET', `/policies/${encodeURIComponent(name)}`, { query: renderQuery(ctx.options) })
      // The document is the output either way (ready for `> policy.json`); --json changes nothing.
      ctx.out.result(doc, () => `${JSON.stringify(doc, null, 2)}\n`)
      return 0
    }
  }
]
