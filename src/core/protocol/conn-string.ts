/**
 * Connection strings as libpq accepts them: `key=value` lists and `postgresql://` URLs.
 *
 * Two forms, one result (`ConnParams`):
 *   host=127.0.0.1 port=5432 user=replicator password='it''s \' quoted' dbname=postgres
 *   postgresql://replicator:s%40cret@127.0.0.1:5432/postgres?application_name=ps
 *
 * Rules follow libpq's `conninfo_parse` and `conninfo_uri_parse_options` (PostgreSQL 15): blanks around `=`
 * are allowed; an unquoted value ends at a blank and `\` escapes the next character; a single-quoted value
 * may hold blanks and uses `\'` and `\\`; URL parts are percent-decoded, IPv6 hosts sit in brackets, and a
 * host that starts with `/` is a Unix socket directory. Unknown keys are an error (as in libpq), so a typo
 * such as `pasword=` is caught instead of ignored. Only one host is supported (libpq allows lists).
 *
 * Invariants: the result is frozen; `port` is 1..65535; `password` is never echoed in error messages.
 * Pure: no environment lookups here. Callers (the CLI) pass PGHOST/PGUSER-style defaults explicitly; a
 * missing password is looked up by app/source-password.ts (PGPASSWORD, then the password file, as libpq).
 * The tokenizer (`keywordTokens`) and the URL splitter (`splitConnUrl`) keep where each part sits in the text,
 * so conn-string-strip.ts removes a password with exactly the rules used here to read it.
 */
import { UsageError } from '../lib/errors.js'

export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full'

export interface ConnParams {
  /** A host name or IP address, or (starting with `/`) a Unix socket directory. */
  readonly host: string
  readonly port: number
  readonly user: string
  readonly password: string | undefined
  readonly dbname: string
  readonly applicationName: string | undefined
  /** Seconds, as libpq's `connect_timeout`; undefined = the caller's default. */
  readonly connectTimeoutSeconds: number | undefined
  readonly sslMode: SslMode
  /** libpq's `passfile`: the password file to read when no password is given (else PGPASSFILE, else ~/.pgpass). */
  readonly passFile?: string | undefined
  /**
   * The host a password file line must name: `host` as written, else `hostaddr` (libpq's rule), while `host`
   * above is where we connect (hostaddr first). Absent: `host`.
   */
  readonly passFileHost?: string | undefined
}

/** Defaults a caller may supply (e.g. the CLI from PGHOST, PGPORT, PGUSER, PGPASSWORD). */
export interface ConnDefaults {
  host?: string
  port?: number
  user?: string
  password?: string
  dbname?: string
  applicationName?: string
}

/** Longest connection string we accept; anything longer is not a connection string. */
export const connStringLengthMax = 8192

const DEFAULT_PORT = 5432
const DEFAULT_HOST = 'localhost'
const DEFAULT_USER = 'postgres'

/** Keys that we use. */
const USED_KEYS = new Set([
  'host',
  'hostaddr',
  'port',
  'user',
  'password',
  'dbname',
  'application_name',
  'fallback_application_name',
  'connect_timeout',
  'sslmode',
  'replication',
  'passfile',
])

/**
 * libpq keys that are valid but have no effect here (TCP keepalive tuning, client encoding, and options
 * that only matter with TLS or Kerberos, which we do not speak). Accepted so that strings written for psql
 * keep working.
 */
const IGNORED_KEYS = new Set([
  'client_encoding',
  'options',
  'keepalives',
  'keepalives_idle',
  'keepalives_interval',
  'keepalives_count',
  'tcp_user_timeout',
  'target_session_attrs',
  'gssencmode',
  'krbsrvname',
  'gsslib',
  'channel_binding',
  'sslcompression',
  'sslcert',
  'sslkey',
  'sslpassword',
  'sslrootcert',
  'sslcrl',
  'sslcrldir',
  'sslsni',
  'requirepeer',
  'ssl_min_protocol_version',
  'ssl_max_protocol_version',
  'service',
])

const SSL_MODES: readonly SslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']

const HINT =
  'Write a libpq connection string such as "host=127.0.0.1 port=5432 user=postgres password=secret" or a URL ' +
  'such as postgresql://postgres:secret@127.0.0.1:5432/postgres.'

function bad(message: string): UsageError {
  return new UsageError('BAD_CONNECTION_STRING', message, { hint: HINT })
}

/** Parses either form. Throws UsageError (code BAD_CONNECTION_STRING) with what is wrong. */
export function parseConnString(text: string, defaults: ConnDefaults = {}): ConnParams {
  if (text.length > connStringLengthMax) throw bad(`connection string is ${text.length} characters long; at most ${connStringLengthMax} are accepted`)
  const trimmed = text.trim()
  const pairs = /^postgres(ql)?:\/\//i.test(trimmed) ? parseUrlPairs(trimmed) : parseKeywordPairs(trimmed)
  return buildParams(pairs, defaults)
}

/** One `key=value` of a keyword connection string, and where it sits: `text.slice(start, end)` is `key=value` as written. */
export interface KeywordToken {
  readonly name: string
  /** The value with quotes and escapes removed. */
  readonly value: string
  readonly start: number
  readonly end: number
}

/** `key=value` pairs, in order (a later duplicate wins, as in libpq). */
export function parseKeywordPairs(text: string): Array<[string, string]> {
  return keywordTokens(text).map((t) => [t.name, t.value])
}

/** The tokens of a keyword connection string, in order, with their spans. */
export function keywordTokens(text: string): KeywordToken[] {
  const out: KeywordToken[] = []
  let i = 0
  const n = text.length
  const isBlank = (c: string | undefined): boolean => c !== undefined && /\s/.test(c)
  while (i < n) {
    if (isBlank(text[i])) {
      i++
      continue
    }
    const nameStart = i
    while (i < n && text[i] !== '=' && !isBlank(text[i])) i++
    const name = text.slice(nameStart, i)
    while (i < n && isBlank(text[i])) i++
    if (text[i] !== '=') throw bad(`missing "=" after "${name}" in the connection string`)
    i++
    while (i < n && isBlank(text[i])) i++
    let value = ''
    if (text[i] === "'") {
      i++
      for (;;) {
        if (i >= n) throw bad(`unterminated quoted value for "${name}" in the connection string`)
        const c = text[i]!
        if (c === '\\') {
          i++
          if (i < n) value += text[i++]
          continue
        }
        if (c === "'") {
          i++
          break
        }
        value += c
        i++
      }
    } else {
      while (i < n && !isBlank(text[i])) {
        if (text[i] === '\\') {
          i++
          if (i < n) value += text[i++]
        } else {
          value += text[i++]
        }
      }
    }
    if (name === '') throw bad('a connection string parameter has an empty name')
    out.push({ name, value, start: nameStart, end: i })
  }
  return out
}

function percentDecode(s: string, what: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    throw bad(`invalid percent-encoding in the ${what} of the connection URL`)
  }
}

/**
 * The raw parts of a connection URL, not yet percent-decoded:
 *   postgresql://user:pw@host:5432/db?k=v  ->  scheme "postgresql://", userInfo "user:pw", hostPort "host:5432",
 *                                              path "db", query "k=v"
 * The query starts at the first `?`, the path at the first `/` before it, and the user info ends at the last
 * `@` before the path (so an unencoded `@` in a password still parses, as in libpq).
 */
export interface ConnUrlParts {
  readonly scheme: string
  /** `user`, `user:password` or `:password`; null when the URL has no `@`. */
  readonly userInfo: string | null
  readonly hostPort: string
  readonly path: string | null
  readonly query: string | null
}

export function splitConnUrl(url: string): ConnUrlParts {
  const scheme = /^postgres(ql)?:\/\//i.exec(url)?.[0] ?? ''
  let rest = url.slice(scheme.length)
  let query: string | null = null
  const q = rest.indexOf('?')
  if (q >= 0) {
    query = rest.slice(q + 1)
    rest = rest.slice(0, q)
  }
  let path: string | null = null
  const slash = rest.indexOf('/')
  if (slash >= 0) {
    path = rest.slice(slash + 1)
    rest = rest.slice(0, slash)
  }
  let userInfo: string | null = null
  const at = rest.lastIndexOf('@')
  if (at >= 0) {
    userInfo = rest.slice(0, at)
    rest = rest.slice(at + 1)
  }
  return { scheme, userInfo, hostPort: rest, path, query }
}

/** The decoded key of one `k=v` part of a URL query (throws on bad percent-encoding or a missing `=`). */
export function urlQueryKey(part: string): string {
  const eq = part.indexOf('=')
  if (eq < 0) throw bad(`missing "=" in the URL query parameter "${part}"`)
  return percentDecode(part.slice(0, eq), 'query')
}

/** `postgresql://[user[:password]@][host][:port][/dbname][?k=v&...]` -> pairs. */
export function parseUrlPairs(url: string): Array<[string, string]> {
  const out: Array<[string, string]> = []
  const parts = splitConnUrl(url)
  const rest = parts.hostPort
  const path = parts.path ?? undefined
  const query = parts.query ?? ''
  if (parts.userInfo !== null) {
    const cred = parts.userInfo
    const colon = cred.indexOf(':')
    const user = colon >= 0 ? cred.slice(0, colon) : cred
    if (user !== '') out.push(['user', percentDecode(user, 'user name')])
    if (colon >= 0) out.push(['password', percentDecode(cred.slice(colon + 1), 'password')])
  }
  if (rest.includes(',')) throw bad('connection URLs with several hosts are not supported; give one host')
  let host = rest
  let port: string | undefined
  if (host.startsWith('[')) {
    const close = host.indexOf(']')
    if (close < 0) throw bad('missing "]" after an IPv6 host in the connection URL')
    const after = host.slice(close + 1)
    if (after !== '' && !after.startsWith(':')) throw bad(`unexpected "${after}" after the IPv6 host in the connection URL`)
    if (after.startsWith(':')) port = after.slice(1)
    host = host.slice(1, close)
  } else {
    const colon = host.lastIndexOf(':')
    if (colon >= 0) {
      port = host.slice(colon + 1)
      host = host.slice(0, colon)
    }
  }
  if (host !== '') out.push(['host', percentDecode(host, 'host')])
  if (port !== undefined && port !== '') out.push(['port', percentDecode(port, 'port')])
  if (path !== undefined && path !== '') out.push(['dbname', percentDecode(path, 'database name')])
  if (query !== '') {
    for (const part of query.split('&')) {
      if (part === '') continue
      const key = urlQueryKey(part)
      const value = percentDecode(part.slice(part.indexOf('=') + 1), 'query')
      // libpq's URL compatibility: ssl=true means sslmode=require.
      if (key === 'ssl') {
        if (value !== 'true') throw bad(`URL parameter ssl="${value}" is not valid; only ssl=true is accepted`)
        out.push(['sslmode', 'require'])
      } else {
        out.push([key, value])
      }
    }
  }
  return out
}

function buildParams(pairs: Array<[string, string]>, defaults: ConnDefaults): ConnParams {
  const values = new Map<string, string>()
  for (const [k, v] of pairs) {
    if (!USED_KEYS.has(k) && !IGNORED_KEYS.has(k)) throw bad(`unknown connection parameter "${k}"`)
    values.set(k, v)
  }
  const nonEmpty = (k: string): string | undefined => {
    const v = values.get(k)
    return v === undefined || v === '' ? undefined : v
  }
  // hostaddr (a numeric address) wins over host for where we connect, as in libpq.
  const host = nonEmpty('hostaddr') ?? nonEmpty('host') ?? defaults.host ?? DEFAULT_HOST
  if (host.includes(',')) throw bad('connection strings with several hosts are not supported; give one host')

  let port = defaults.port ?? DEFAULT_PORT
  const portText = nonEmpty('port')
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      throw bad(`port "${portText}" is not a number between 1 and 65535`)
    }
    port = Number(portText)
  }
  let connectTimeoutSeconds: number | undefined
  const ct = nonEmpty('connect_timeout')
  if (ct !== undefined) {
    if (!/^\d{1,9}$/.test(ct)) throw bad(`connect_timeout "${ct}" is not a whole number of seconds`)
    // libpq: 0 means wait forever; 1 is raised to 2.
    const s = Number(ct)
    connectTimeoutSeconds = s === 0 ? undefined : Math.max(2, s)
  }
  const sslText = nonEmpty('sslmode') ?? 'prefer'
  if (!SSL_MODES.includes(sslText as SslMode)) throw bad(`sslmode "${sslText}" is not one of ${SSL_MODES.join(', ')}`)
  const replication = nonEmpty('replication')
  if (replication !== undefined && !['true', 'on', 'yes', '1'].includes(replication.toLowerCase())) {
    // This client always opens physical replication connections; a string asking for something else is a mistake.
    throw bad(`replication="${replication}" is not supported here; physical replication (replication=true) is always used`)
  }
  const user = nonEmpty('user') ?? defaults.user ?? DEFAULT_USER
  return Object.freeze({
    host,
    port,
    user,
    password: values.get('password') ?? defaults.password,
    dbname: nonEmpty('dbname') ?? defaults.dbname ?? user,
    applicationName: nonEmpty('application_name') ?? nonEmpty('fallback_application_name') ?? defaults.applicationName,
    connectTimeoutSeconds,
    sslMode: sslText as SslMode,
    passFile: nonEmpty('passfile'),
    passFileHost: nonEmpty('host') ?? nonEmpty('hostaddr') ?? defaults.host ?? DEFAULT_HOST,
  })
}

/** A printable description of where we connect, without the password: `postgres@127.0.0.1:5432`. */
export function describeConnParams(p: ConnParams): string {
  const host = p.host.includes(':') && !p.host.startsWith('/') ? `[${p.host}]` : p.host
  return `${p.user}@${host}:${p.port}`
}
