// One pino root for the daemon; rooms take child loggers. Values of secrets are SecretValue instances, which
// serialise as "[redacted]"; the redact paths are a second fence for fields that must never carry data.
import { pino, type Logger, type DestinationStream } from 'pino'

export type { Logger }

export const REDACT_PATHS = [
  'value', '*.value', 'values', '*.values',
  'body.value', 'req.body', 'request.body',
  'env.*', '*.env.*',
  'req.headers.authorization', 'req.headers.cookie'
]

export function createLogger (level: string, destination?: DestinationStream): Logger {
  return pino({
    level,
    base: { service: 'nf-secretsd' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime
  }, destination ?? pino.destination({ dest: 1, sync: false }))
}
