// The logger fastify hands each request (request.log): a child of the API's logger bound to the request's id, made
// only when the request writes a line. pino's child() serialises its bindings and sets up the redaction again: about
// 13 us of the daemon's 95 us of CPU per GET answered from the body cache, paid by every request even at `warn`, where
// a request that goes well writes nothing (issue 18, bench/README). At `info` every request logs (docs/config.md) and
// its child is made at its first line, as fastify made it before.
import type { FastifyBaseLogger } from 'fastify'
import type { Bindings, ChildLoggerOptions, Logger } from 'pino'

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'

export class RequestLogger implements FastifyBaseLogger {
  readonly #parent: Logger
  readonly #bindings: Bindings
  #child: FastifyBaseLogger | null = null

  constructor (parent: Logger, bindings: Bindings) {
    this.#parent = parent
    this.#bindings = bindings
  }

  get level (): string {
    return (this.#child ?? this.#parent).level
  }

  set level (level: string) {
    this.#made().level = level
  }

  fatal (...args: unknown[]): void { this.#write('fatal', args) }
  error (...args: unknown[]): void { this.#write('error', args) }
  warn (...args: unknown[]): void { this.#write('warn', args) }
  info (...args: unknown[]): void { this.#write('info', args) }
  debug (...args: unknown[]): void { this.#write('debug', args) }
  trace (...args: unknown[]): void { this.#write('trace', args) }
  silent (): void {}

  child (bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#made().child(bindings, options)
  }

  /** true once a line (or a level, or a child) needed the real child logger: for tests */
  get made (): boolean {
    return this.#child !== null
  }

  #made (): FastifyBaseLogger {
    this.#child ??= this.#parent.child(this.#bindings)
    return this.#child
  }

  #write (level: Level, args: unknown[]): void {
    // The parent's level decides until a child exists; a child's own level (set through `level`) decides after.
    if (this.#child === null && !this.#parent.isLevelEnabled(level)) return
    const log = this.#made()
    Reflect.apply(log[level], log, args)
  }
}

/**
 * fastify's `childLoggerFactory`. A route with a log level or serializers of its own gets its child at once (none
 * has one today; the lazy child would not know them).
 */
export function requestLogger (logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  if (!isEmpty(options)) return logger.child(bindings, options)
  return new RequestLogger(logger as unknown as Logger, bindings)
}

// Called per request: no array of keys made to learn that there are none.
function isEmpty (o: object): boolean {
  for (const key in o) if (Object.hasOwn(o, key)) return false
  return true
}
