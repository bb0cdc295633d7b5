// A secret value the logger cannot print. pino serialises with JSON.stringify and util.inspect is what
// console and error dumps use: both see `[redacted]`. The bytes come out only through reveal(), which the
// targets call at the moment they place a value.
import { inspect } from 'node:util'

const REDACTED = '[redacted]'

export class SecretValue {
  readonly #value: string

  constructor (value: string) {
    this.#value = value
  }

  reveal (): string {
    return this.#value
  }

  /** Whether the value holds `text`, without letting the value out. */
  contains (text: string): boolean {
    return this.#value.includes(text)
  }

  get byteLength (): number {
    return Buffer.byteLength(this.#value, 'utf8')
  }

  toJSON (): string {
    return REDACTED
  }

  toString (): string {
    return REDACTED
  }

  [inspect.custom] (): string {
    return REDACTED
  }
}
