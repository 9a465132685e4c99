/**
 * libpq's environment defaults for a connection string given on the command line (`--from`): unset parts
 * come from PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE, as psql would take them. The CLI reads the
 * environment; core gets the result (conn-string.ts is pure).
 */
import { Flags } from '@oclif/core'
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

/** `--from` parsed with the environment's defaults (UsageError BAD_CONNECTION_STRING when malformed). */
export function parseFromFlag(text: string, env: NodeJS.ProcessEnv, applicationName: string): ConnParams {
  return parseConnString(text, connDefaultsFromEnv(env, applicationName))
}

/** `--from` of the commands that run SQL on the primary (`slot list`, `slot drop`): the dbname matters there. */
export const primaryWithDbFlag = Flags.string({
  summary: 'Connection string of the primary: "host=... port=... user=... password=... dbname=..." or postgresql://user:password@host:port/dbname.',
  description: 'Unset parts come from PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE, then libpq defaults (localhost, 5432, postgres, dbname = user).',
  required: true,
})
