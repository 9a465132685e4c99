/**
 * A secret value (an access key) that cannot leak by accident.
 *
 * Credentials reach the config only from the environment, never from a file. Wrapping them in this class
 * means every path that turns a value into text (`String()`, template literals, `JSON.stringify`,
 * `util.inspect`, vitest diffs) prints "<redacted>"; only an explicit `reveal()` at the point of use (the
 * S3 or Azure client) sees the real text. The value lives in a private field, so it is not an own
 * enumerable property that a generic object walker could find.
 */
import { inspect } from 'node:util'

export const REDACTED = '<redacted>'

export class Secret {
  readonly #value: string

  constructor(value: string) {
    this.#value = value
  }

  /** The real value; call it only where the secret is handed to the service that needs it. */
  reveal(): string {
    return this.#value
  }

  toString(): string {
    return REDACTED
  }

  toJSON(): string {
    return REDACTED
  }

  [inspect.custom](): string {
    return `Secret(${REDACTED})`
  }
}
