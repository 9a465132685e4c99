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

/** Names people try to put credentials under in the config; each is refused, and its value never shown. */
export const CREDENTIAL_KEY_NAMES: ReadonlySet<string> = new Set([
  'access_key_id',
  'secret_access_key',
  'aws_access_key_id',
  'aws_secret_access_key',
  'session_token',
  'access_key',
  'storage_access_key',
  'account_key',
  'azure_storage_access_key',
  'sas_token',
  'password',
])

/**
 * `key = value` of a credential key in TOML text: the key bare or quoted, the value a string (closed or not:
 * the syntax error being reported may be that quote) or a bare token. Errors quote the `-c` fragment they come
 * from, so `-c "remote_storage={..., secret_access_key='s3cr3t'}"` is shown as `secret_access_key=<redacted>`.
 */
const CREDENTIAL_VALUE_RE = new RegExp(
  String.raw`(["']?)\b(${[...CREDENTIAL_KEY_NAMES].join('|')})\1(\s*=\s*)` +
    String.raw`("""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|"(?:[^"\\\n]|\\.)*"?|'[^'\n]*'?|[^,}\s]*)`,
  'gi',
)

/** TOML text (a `-c` fragment, a syntax error's excerpt) with the value of every credential key redacted. */
export function redactCredentialValues(text: string): string {
  return text.replace(CREDENTIAL_VALUE_RE, (_m, quote: string, key: string, eq: string) => `${quote}${key}${quote}${eq}${REDACTED}`)
}

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
