/**
 * Connection strings to keep: the same string without its password, so it can be written to disk (a
 * timeline's WAL source in its metadata) while the password stays where credentials belong, in the
 * environment of the process that connects (PGPASSWORD, a password file: app/source-password.ts).
 *
 *   host=db user=rep password='it\'s secret' dbname=postgres  ->  host=db user=rep dbname=postgres
 *   postgresql://rep:s%40cret@db:5432/postgres?password=x&application_name=ps
 *                                                            ->  postgresql://rep@db:5432/postgres?application_name=ps
 *
 * Unlike conn-string-redact.ts (display: a placeholder in place of the password, works on malformed text),
 * this removes the password entirely and reads the text with the parser's own tokenizer and URL splitter
 * (conn-string.ts), so whatever the parser would take as the password is what goes: quoted values with
 * blanks and escaped quotes, backslash escapes, blanks around `=`, every duplicate, the URL's user info and
 * `?password=` (however its key is percent-encoded). A malformed string is a UsageError, as in parsing.
 *
 * Invariants: everything but the password parts is kept as written (so a string without a password comes back
 * unchanged); parsing the result gives the same parameters with no password; an empty password counts as none
 * (libpq then looks further, in PGPASSWORD and the password file).
 */
import { keywordTokens, splitConnUrl, urlQueryKey, connStringLengthMax } from './conn-string.js'
import { UsageError } from '../lib/errors.js'

export interface StrippedConnString {
  /** The string without any password. */
  readonly connString: string
  /** The password it had (the one the parser uses: the last one), undefined when none or empty. */
  readonly password: string | undefined
}

const PASSWORD_KEY = 'password'

export function stripPassword(text: string): StrippedConnString {
  if (text.length > connStringLengthMax) {
    throw new UsageError('BAD_CONNECTION_STRING', `connection string is ${text.length} characters long; at most ${connStringLengthMax} are accepted`)
  }
  const trimmed = text.trim()
  return /^postgres(ql)?:\/\//i.test(trimmed) ? stripUrl(text, trimmed) : stripKeywords(text)
}

function stripKeywords(text: string): StrippedConnString {
  const tokens = keywordTokens(text)
  const secret = tokens.filter((t) => t.name === PASSWORD_KEY)
  if (secret.length === 0) return { connString: text, password: undefined }
  let out = text
  // From the last to the first, so earlier spans stay valid. Each goes with the blanks after it (or, for the
  // last token of the string, before it): "a=1 password=x b=2" -> "a=1 b=2", "a=1 password=x" -> "a=1".
  for (const t of [...secret].reverse()) {
    let start = t.start
    let end = t.end
    while (end < out.length && /\s/.test(out[end]!)) end++
    if (end === out.length) while (start > 0 && /\s/.test(out[start - 1]!)) start--
    out = out.slice(0, start) + out.slice(end)
  }
  return { connString: out, password: nonEmpty(secret[secret.length - 1]!.value) }
}

function stripUrl(text: string, trimmed: string): StrippedConnString {
  const parts = splitConnUrl(trimmed)
  let password: string | undefined
  let found = false
  let userInfo = parts.userInfo
  if (userInfo !== null) {
    const colon = userInfo.indexOf(':')
    if (colon >= 0) {
      found = true
      password = decode(userInfo.slice(colon + 1))
      userInfo = userInfo.slice(0, colon)
    }
  }
  let query = parts.query
  if (query !== null) {
    const kept: string[] = []
    for (const part of query.split('&')) {
      if (part !== '' && urlQueryKey(part) === PASSWORD_KEY) {
        found = true
        password = decode(part.slice(part.indexOf('=') + 1))
      } else {
        kept.push(part)
      }
    }
    query = kept.some((p) => p !== '') ? kept.join('&') : null
  }
  if (!found) return { connString: text, password: undefined }
  const connString =
    parts.scheme +
    (userInfo === null || userInfo === '' ? '' : `${userInfo}@`) +
    parts.hostPort +
    (parts.path === null ? '' : `/${parts.path}`) +
    (query === null ? '' : `?${query}`)
  return { connString, password: nonEmpty(password) }
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    throw new UsageError('BAD_CONNECTION_STRING', 'invalid percent-encoding in the password of the connection URL')
  }
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s
}
