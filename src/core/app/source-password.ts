/**
 * The password of a WAL source: kept out of everything written to disk, found again when we connect.
 *
 * A timeline records its WAL source (the primary's connection string) in its metadata, which is written
 * after every flush and will travel to remote storage. Credentials come from the environment and are never
 * written (the rule for the S3 and Azure keys too), so the string is recorded without its password
 * (`recordSourceConnString`) and every connection made with a recorded string goes through
 * `sourceConnection`, which finds the password as libpq would, first found wins:
 *   1. the string's own `password` (metadata written before passwords were kept out still has one);
 *   2. the password given with the string to this process (`timeline import --from`, `timeline source
 *      --from`, the management API), kept in memory for the context's life, never written: an import goes on
 *      streaming with it, and a running server keeps using it until it stops;
 *   3. PGPASSWORD in the context's environment;
 *   4. the password file: the string's `passfile`, else PGPASSFILE, else ~/.pgpass (HOME), its first line
 *      matching host:port:replication:user (protocol/pgpass.ts; physical replication connections match
 *      the database name `replication`); a file that group or others may access is ignored, with a warning
 *      in the log and in the hint of a failed authentication (storage/pgpass-file.ts).
 * Nothing found: the connection goes without a password, and if the server asks for one the error
 * (PG_PASSWORD_REQUIRED) says where it was looked for and how to provide it (`explainPasswordError`).
 *
 * Empty passwords count as none at every step (libpq's rule). The environment is the context's (`ctx.env`),
 * never process.env, so tests and the server choose it.
 */
import { homedir } from 'node:os'
import { join } from 'node:path'
import { errorOfKind, PageserverError } from '../lib/errors.js'
import { describeConnParams, parseConnString, type ConnParams } from '../protocol/conn-string.js'
import { stripPassword } from '../protocol/conn-string-strip.js'
import { passFileField, passwordFromPassFile, replicationDbName } from '../protocol/pgpass.js'
import { readPassFile, type PassFileRead } from '../storage/pgpass-file.js'
import { ReplicationConnection, type ReplicationConnectionOptions } from '../walreceiver/replication-connection.js'
import type { AppContext } from './context.js'

export type PasswordOrigin = 'connection string' | 'given to this process' | 'PGPASSWORD' | 'password file' | 'none'

/** A recorded source ready to connect: its parameters with the password found, and where it was found. */
export interface SourceConnection {
  readonly params: ConnParams
  readonly passwordFrom: PasswordOrigin
  /** The password file looked in (null when the string or the environment had a password). */
  readonly passFile: string | null
  /** Why that file was not used although it exists (group or world access, say); null otherwise. */
  readonly passFileIgnored: string | null
  /** Whether that file exists (for the hint: "does not exist" and "has no line for it" call for different fixes). */
  readonly passFileExists: boolean
}

/** A connection string as it is recorded, and what the user should be told about it. */
export interface RecordedSource {
  /** The string without its password: what goes into the metadata. */
  readonly connString: string
  /** The given string had a password, and it was left out. */
  readonly passwordOmitted: boolean
  /** Lines for the user: where the password that was left out must come from. Empty when there was none. */
  readonly notes: string[]
}

/** Passwords given with a source to this process, by the recorded (password-free) string, per context. */
const givenPasswords = new WeakMap<AppContext, Map<string, string>>()

/**
 * The string to record for a WAL source the user gave (with or without a password). The password, if any,
 * is kept in memory for this context (so the rest of the command, or the running server, still connects
 * with it) and named in a note.
 */
export function recordSourceConnString(ctx: AppContext, connString: string): RecordedSource {
  const { connString: kept, password } = stripPassword(connString)
  if (password === undefined) return { connString: kept, passwordOmitted: false, notes: [] }
  let mine = givenPasswords.get(ctx)
  if (mine === undefined) givenPasswords.set(ctx, (mine = new Map()))
  mine.set(kept, password)
  return { connString: kept, passwordOmitted: true, notes: [passwordNotStoredNote(parseConnString(kept))] }
}

/** The note for a password left out of the metadata: how `serve` and `timeline sync` will find it. */
export function passwordNotStoredNote(p: ConnParams): string {
  return (
    'The password in the connection string was not stored with the timeline. `pageserver serve` and `pageserver timeline sync` ' +
    `take it from PGPASSWORD or from a password file (PGPASSFILE, else ~/.pgpass, mode 0600) with the line ${passFileLine(p)}.`
  )
}

/** The password file line for `p`, with a placeholder for the password. */
export function passFileLine(p: ConnParams): string {
  return [p.passFileHost ?? p.host, String(p.port), replicationDbName, p.user].map(passFileField).join(':') + ':<password>'
}

/** Parses a recorded (or given) connection string and finds its password (the order in the header). */
export function sourceConnection(ctx: AppContext, connString: string): SourceConnection {
  const parsed = parseConnString(connString)
  const found = (password: string, passwordFrom: PasswordOrigin, passFile: string | null = null): SourceConnection => ({
    params: Object.freeze({ ...parsed, password }),
    passwordFrom,
    passFile,
    passFileIgnored: null,
    passFileExists: passFile !== null,
  })
  const own = nonEmpty(parsed.password)
  if (own !== undefined) return found(own, 'connection string')
  const given = givenPasswords.get(ctx)?.get(connString)
  if (given !== undefined) return found(given, 'given to this process')
  const env = nonEmpty(ctx.env.PGPASSWORD)
  if (env !== undefined) return found(env, 'PGPASSWORD')
  const file = lookupPassFile(parsed, ctx.env, replicationDbName)
  if (file.password !== undefined) return found(file.password, 'password file', file.path)
  const passFileIgnored = file.read.kind === 'ignored' ? file.read.reason : null
  if (passFileIgnored !== null) ctx.log?.('warn', `password file ${file.path} ${passFileIgnored}; ignored`, { path: file.path })
  return { params: Object.freeze({ ...parsed, password: undefined }), passwordFrom: 'none', passFile: file.path, passFileIgnored, passFileExists: file.read.kind !== 'absent' }
}

/** What the password file says for a connection: which file, what reading it gave, the password (if a line matches). */
export interface PassFileLookup {
  readonly path: string
  readonly read: PassFileRead
  /** The password of the first matching line; undefined when none matches, it is empty, or the file was not read. */
  readonly password: string | undefined
}

/**
 * The password file's answer for `p` (libpq's rules): the string's passfile, else PGPASSFILE, else ~/.pgpass,
 * its first line matching host, port, `dbname` (the database field the connection presents: `replication`
 * for a physical walsender, the real database name for one that runs SQL) and user.
 */
export function lookupPassFile(p: ConnParams, env: NodeJS.ProcessEnv, dbname: string): PassFileLookup {
  const path = p.passFile ?? nonEmpty(env.PGPASSFILE) ?? join(nonEmpty(env.HOME) ?? homedir(), '.pgpass')
  const read = readPassFile(path)
  const password = read.kind === 'read' ? nonEmpty(passwordFromPassFile(read.text, { host: p.passFileHost ?? p.host, port: p.port, dbname, user: p.user })) : undefined
  return { path, read, password }
}

/**
 * A replication connection to a recorded (or given) source, its password found as above; a failed
 * authentication comes out explained (`explainPasswordError`). `source` says where the password came from.
 */
export async function connectToSource(
  ctx: AppContext,
  connString: string,
  options: ReplicationConnectionOptions,
): Promise<{ conn: ReplicationConnection; source: SourceConnection }> {
  const source = sourceConnection(ctx, connString)
  try {
    return { conn: await ReplicationConnection.connect(source.params, options), source }
  } catch (e) {
    throw explainPasswordError(e, source)
  }
}

/**
 * A failed authentication with a hint that says where the password was looked for (PG_PASSWORD_REQUIRED) or
 * where the one used came from (PG_AUTH_FAILED, as libpq's "password retrieved from file"); other errors
 * unchanged.
 */
export function explainPasswordError(e: unknown, conn: SourceConnection): unknown {
  if (!(e instanceof PageserverError)) return e
  let hint: string
  if (e.code === 'PG_PASSWORD_REQUIRED') {
    hint = missingPasswordHint(conn)
  } else if (e.code === 'PG_AUTH_FAILED' && conn.passwordFrom !== 'none') {
    hint = `${e.hint ?? ''} The password used came from ${originText(conn)}.`.trim()
  } else {
    return e
  }
  return errorOfKind(e.kind, e.code, e.message, { hint, cause: e, details: { ...e.details, passwordFrom: conn.passwordFrom } })
}

function originText(conn: SourceConnection): string {
  switch (conn.passwordFrom) {
    case 'password file':
      return `the password file ${conn.passFile}`
    case 'given to this process':
      return 'the connection string given to this command'
    case 'PGPASSWORD':
      return 'PGPASSWORD'
    default:
      return 'the connection string'
  }
}

function missingPasswordHint(conn: SourceConnection): string {
  const p = conn.params
  const file =
    conn.passFileIgnored !== null
      ? `the password file ${conn.passFile} was ignored: it ${conn.passFileIgnored}${/group or world/.test(conn.passFileIgnored) ? ' (chmod 0600 it)' : ''}`
      : conn.passFileExists
        ? `the password file ${conn.passFile} has no line for it`
        : `there is no password file ${conn.passFile}`
  return (
    `No password for ${describeConnParams(p)}: a timeline's WAL source is stored without its password, PGPASSWORD is not set, and ${file}. ` +
    'Give it to the command that connects (`pageserver serve`, `pageserver timeline sync`) in PGPASSWORD, or add the line ' +
    `${passFileLine(p)} to the password file (PGPASSFILE, else ~/.pgpass, mode 0600).`
  )
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s
}
