/**
 * StartupAuth: the client side of the startup phase, from StartupMessage (built by `startupMessage`) to the
 * first ReadyForQuery.
 *
 * Answers whatever the server asks for: cleartext password, MD5, or SASL SCRAM-SHA-256 (the maths is in
 * protocol/auth.ts). Pure message-in, bytes-out: the connection sends what `onMessage` returns, and any
 * thrown error ends the connection. `authenticationOk` is only accepted after a started SCRAM exchange has
 * verified the server's signature, so a server cannot skip proving that it knows the password.
 */
import { serialize } from 'pg-protocol'
import type { BackendMessage } from 'pg-protocol/dist/messages.js'
import { chooseSaslMechanism, md5PasswordResponse, passwordRequired, ScramSha256Client } from '../protocol/auth.js'
import { CorruptionError } from '../lib/errors.js'
import type { ConnParams } from '../protocol/conn-string.js'
import type { ResolvedConnectionOptions } from './connection-options.js'

export interface StartupStep {
  /** Bytes to send to the server, if any. */
  readonly send?: Buffer
  /** The server is ready for commands. */
  readonly ready?: boolean
}

type AnyMessage = BackendMessage & Record<string, unknown>

export type AuthMethod = 'trust' | 'cleartext' | 'md5' | 'scram-sha-256'

/** What a replication connection sends first, once its socket is connected. */
export function startupMessage(params: ConnParams, opts: Pick<ResolvedConnectionOptions, 'replicationMode' | 'applicationName'>): Buffer {
  return serialize.startup({
    user: params.user,
    database: params.dbname,
    // 'database' asks for a logical walsender, which also runs SQL (connection-options.ts).
    replication: opts.replicationMode === 'database' ? 'database' : 'true',
    application_name: params.applicationName ?? opts.applicationName,
  })
}

export class StartupAuth {
  private scram: ScramSha256Client | undefined
  /** What the server asked for (trust until it asks for a password). */
  method: AuthMethod = 'trust'

  constructor(
    private readonly user: string,
    private readonly password: string | undefined,
  ) {}

  onMessage(msg: AnyMessage): StartupStep {
    const password = this.password
    switch (msg.name) {
      case 'authenticationCleartextPassword':
        this.method = 'cleartext'
        if (password === undefined) throw passwordRequired('cleartext')
        return { send: serialize.password(password) }
      case 'authenticationMD5Password':
        this.method = 'md5'
        if (password === undefined) throw passwordRequired('MD5')
        return { send: serialize.password(md5PasswordResponse(this.user, password, msg.salt as Buffer)) }
      case 'authenticationSASL': {
        this.method = 'scram-sha-256'
        if (password === undefined) throw passwordRequired('SCRAM-SHA-256')
        const mechanism = chooseSaslMechanism(msg.mechanisms as string[])
        this.scram = new ScramSha256Client(password)
        return { send: serialize.sendSASLInitialResponseMessage(mechanism, this.scram.clientFirstMessage()) }
      }
      case 'authenticationSASLContinue':
        if (!this.scram) throw unexpected(msg.name)
        return { send: serialize.sendSCRAMClientFinalMessage(this.scram.clientFinalMessage(String(msg.data))) }
      case 'authenticationSASLFinal':
        if (!this.scram) throw unexpected(msg.name)
        this.scram.verifyServerFinal(String(msg.data))
        return {}
      case 'authenticationOk':
        if (this.scram && !this.scram.completed) throw unexpected('authenticationOk before the SCRAM exchange completed')
        return {}
      case 'readyForQuery':
        return { ready: true }
      default:
        throw unexpected(msg.name)
    }
  }
}

function unexpected(name: string): CorruptionError {
  return new CorruptionError('PG_PROTOCOL_VIOLATION', `unexpected "${name}" message from the server during startup`, {
    hint: 'Check that host and port point to a PostgreSQL 15 server.',
  })
}
