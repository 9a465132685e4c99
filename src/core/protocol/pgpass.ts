/**
 * The libpq password file (`~/.pgpass`, PGPASSFILE, the `passfile` connection parameter): which password a
 * line gives for a connection. Pure: the text in, a password out; reading the file (and refusing one that
 * group or others may read) is storage/pgpass-file.ts.
 *
 * Format, as libpq's `passwordFromFile` and `pwdfMatchesString` read it (PostgreSQL 15):
 *   # a comment (only when `#` is the line's first character)
 *   hostname:port:database:username:password
 *   127.0.0.1:5432:replication:replicator:s3cret
 *   *:*:*:postgres:it\:s \\ fine          -> password "it:s \ fine"
 * - the first matching line wins; each of the first four fields is `*` (the whole field: anything) or a literal
 *   compared exactly, in which `\:` and `\\` stand for `:` and `\`;
 * - the password runs to the next unescaped `:` or the end of the line, escapes removed; a line with fewer
 *   than five fields never matches (libpq needs the `:` after the user name);
 * - `localhost` matches a connection with no host or one through the default socket directory /tmp (libpq's
 *   DEFAULT_PGSOCKET_DIR);
 * - trailing CR and LF are ignored (files written on Windows work).
 * A physical replication connection (the only kind we open) is matched with the database name `replication`:
 * `replicationDbName`.
 */

/** What a line is matched against. */
export interface PassFileKey {
  readonly host: string
  readonly port: number
  readonly dbname: string
  readonly user: string
}

/** The database field that matches physical replication connections (walreceiver and pg_basebackup use it too). */
export const replicationDbName = 'replication'

/** libpq's DefaultHost and DEFAULT_PGSOCKET_DIR: a connection through that socket directory counts as `localhost`. */
const DEFAULT_HOST = 'localhost'
const DEFAULT_SOCKET_DIR = '/tmp'

/** The password of the first line of `text` that matches `key`, or undefined. */
export function passwordFromPassFile(text: string, key: PassFileKey): string | undefined {
  const host = key.host === '' || key.host === DEFAULT_SOCKET_DIR ? DEFAULT_HOST : key.host
  const fields = [host, String(key.port), key.dbname, key.user]
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[\r\n]+$/, '')
    if (line === '' || line.startsWith('#')) continue
    let at = 0
    for (const field of fields) {
      at = matchField(line, at, field)
      if (at < 0) break
    }
    if (at >= 0) return unescapePassword(line, at)
  }
  return undefined
}

/**
 * libpq's pwdfMatchesString: whether the field of `line` at `from` is `token` (or `*`); the index after its
 * closing `:` when it is, -1 when not.
 */
function matchField(line: string, from: number, token: string): number {
  if (line[from] === '*' && line[from + 1] === ':') return from + 2
  let i = from
  let t = 0
  while (i < line.length) {
    let escaped = false
    if (line[i] === '\\') {
      i++
      escaped = true
    }
    if (line[i] === ':' && t === token.length && !escaped) return i + 1
    if (t === token.length || line[i] !== token[t]) return -1
    i++
    t++
  }
  return -1
}

/** The password field from `from`: up to an unescaped `:` or the end, escapes removed. */
function unescapePassword(line: string, from: number): string {
  let out = ''
  for (let i = from; i < line.length && line[i] !== ':'; i++) {
    if (line[i] === '\\' && i + 1 < line.length) i++
    out += line[i]
  }
  return out
}

/** A field value written for a password file line (`:` and `\` escaped): `::1` -> `\:\:1`. */
export function passFileField(value: string): string {
  return value.replace(/[\\:]/g, (c) => `\\${c}`)
}
