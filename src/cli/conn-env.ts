/**
 * libpq's environment defaults for a connection string given on the command line (`--from`): unset parts
 * come from PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE, as psql would take them, and a missing
 * password from the password file (app/source-password.ts `lookupPassFile`). The CLI reads the environment;
 * core gets the result (conn-string.ts is pure).
 */
import { Flags } from '@oclif/core'
import { lookupPassFile } from '../core/app/source-password.js'
import { replicationDbName } from '../core/protocol/pgpass.js'
import { parseConnString, type ConnDefaults, type ConnParams } from '../core/protocol/conn-string.js'

export function connDefaultsFromEnv(env: NodeJS.ProcessEnv, applicationName: string): ConnDefaults {
  return {
    host: env.PGHOST || undefined,
    port: env.PGPORT && /^\d+$/.test(env.PGPORT) ? Number(env.PGPORT) : undefined,
    user: env.PGUSER || undefined,
    password: env.PGPASSWORD,
    dbname: env.PGDATABASE || undefined,
    applicationName,
  }
}

/**
 * `--from` parsed with the environment's defaults (UsageError BAD_CONNECTION_STRING when malformed). Without a
 * password in the string or PGPASSWORD, the password file is read as libpq does (the string's passfile, else
 * PGPASSFILE, else ~/.pgpass; a file open to group or others is ignored, with a warning on stderr), matched
 * with the database name the connection presents: `replication` for a physical walsender (`wal receive`),
 * the real dbname for one that runs SQL (`slot list`, `slot drop`).
 */
export function parseFromFlag(text: string, env: NodeJS.ProcessEnv, applicationName: string, passFileDb: 'replication' | 'dbname' = 'replication'): ConnParams {
  const p = parseConnString(text, connDefaultsFromEnv(env, applicationName))
  if (p.password !== undefined && p.password !== '') return p
  const file = lookupPassFile(p, env, passFileDb === 'replication' ? replicationDbName : p.dbname)
  if (file.read.kind === 'ignored') process.stderr.write(`pageserver: password file ${file.path} ${file.read.reason}; ignored\n`)
  return file.password === undefined ? p : Object.freeze({ ...p, password: file.password })
}

/** `--from` of the commands that run SQL on the primary (`slot list`, `slot drop`): the dbname matters there. */
export const primaryWithDbFlag = Flags.string({
  summary: 'Connection string of the primary: "host=... port=... user=... password=... dbname=..." or postgresql://user:password@host:port/dbname.',
  description:
    'Unset parts come from PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE, then libpq defaults (localhost, 5432, postgres, dbname = user); ' +
    'a missing password from the password file (passfile, PGPASSFILE, ~/.pgpass; its database field is the dbname).',
  required: true,
})
