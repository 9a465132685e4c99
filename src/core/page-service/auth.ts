/**
 * JWT authentication of the page service, as Neon's `NeonJWT` auth type: the client sends the token as
 * its cleartext password; it must be signed with EdDSA (Ed25519) by the private half of one of the
 * configured public keys; its claims carry a `scope` and, for the `tenant` scope, a `tenant_id`.
 *
 * Rules (libs/utils/src/auth.rs, pageserver/src/auth.rs; reference section 19):
 * - The algorithm is pinned to EdDSA and never taken from the token header, so `alg: none`, HS256
 *   "signed" with the public key bytes, and RS256 tokens all fail verification.
 * - `exp` is not required; when present it is checked (60 s leeway, as Neon's jsonwebtoken default).
 * - Any configured key may verify a token. Keys are read at start and on a reload (SIGHUP to `serve`, or
 *   POST /v1/reload_auth_validation_keys), which swaps the whole set at once; a reload that fails keeps
 *   the old set. Rotation: add the new public key's file to the directory and reload; issue tokens signed
 *   with the new key; once the old tokens have expired, remove the old file and reload again.
 * - A page service connection is authenticated once, at login: its claims hold until it closes (as in
 *   Neon), and reloaded keys apply to connections opened after the reload. Every HTTP request is verified
 *   with the keys of the moment.
 * - Login: a `tenant` token without `tenant_id` is refused (Neon would panic later; we refuse up front),
 *   and so is a scope the page server never accepts (`safekeeperdata`, `admin`, ...): such a token can
 *   do nothing here, so refusing it at login gives the clearer error. Unknown scopes are refused too.
 * - Per command: `tenant` scope must name the command's tenant; `pageserverapi` may do anything.
 *
 * Errors are `AuthError` with Neon's texts; the page service reports them as ErrorResponse XX000
 * "JWT authentication error" with the reason as detail.
 */
import { importSPKI, jwtVerify } from 'jose'
import { UsageError } from '../lib/errors.js'
import { duplicateTopLevelKey } from '../lib/json-duplicate-keys.js'
import type { TenantId } from '../model/ids.js'

/** Scopes Neon defines (lower-case on the wire). Only `tenant` and `pageserverapi` are eligible here. */
export const JWT_SCOPES = [
  'tenant',
  'tenantendpoint',
  'pageserverapi',
  'safekeeperdata',
  'generations_api',
  'admin',
  'infra',
  'scrubber',
  'controller_peer',
] as const
export type JwtScope = (typeof JWT_SCOPES)[number]

/** Longest token accepted: Neon tokens are a few hundred bytes; a password message is capped anyway. */
export const JWT_TOKEN_BYTES_MAX = 8192
/** Leeway for `exp` / `nbf`, as jsonwebtoken's default in Neon. */
export const JWT_CLOCK_TOLERANCE_S = 60

export interface JwtClaims {
  readonly scope: JwtScope
  readonly tenantId: TenantId | null
}

/**
 * Why a token is refused, in RFC 6750's words: `invalid_token` (not signed by a trusted key, expired,
 * malformed claims: the caller is not authenticated, HTTP 401) or `insufficient_scope` (a good token that
 * may not do this: HTTP 403). The page service reports both the same way (XX000).
 */
export type AuthRefusal = 'invalid_token' | 'insufficient_scope'

/** What to do about any refused token (the page service's and the HTTP API's hint). */
export const AUTH_TOKEN_HINT = 'Pass a token signed by a key the page server trusts, with scope "tenant" for this tenant or "pageserverapi".'

export class AuthError extends UsageError {
  constructor(
    message: string,
    readonly refusal: AuthRefusal = 'invalid_token',
  ) {
    super('PAGE_SERVICE_UNAUTHORIZED', message, { hint: AUTH_TOKEN_HINT })
    this.name = 'AuthError'
  }
}

type VerifyKey = Awaited<ReturnType<typeof importSPKI>>

/**
 * The configured public keys; `verify` checks a token against each in turn. One instance is shared by the page
 * service and the HTTP API for the server's life; a reload replaces its keys (`replaceKeys`).
 */
export class JwtAuth {
  private constructor(
    private keys: readonly VerifyKey[],
    private names: readonly string[],
  ) {}

  /** From PEM texts (SPKI "BEGIN PUBLIC KEY" of Ed25519 keys); at least one. */
  static async fromPublicKeyPems(pems: ReadonlyArray<{ readonly name: string; readonly pem: string }>): Promise<JwtAuth> {
    if (pems.length === 0) {
      throw new UsageError('JWT_NO_KEYS', 'JWT auth is configured with zero public keys, so every token would be refused', {
        hint: 'Point auth_validation_public_key_path at an Ed25519 public key (PEM) or a directory of them.',
      })
    }
    const keys: VerifyKey[] = []
    const names: string[] = []
    for (const { name, pem } of pems) {
      names.push(name)
      try {
        keys.push(await importSPKI(pem, 'EdDSA'))
      } catch (err) {
        throw new UsageError('JWT_BAD_KEY', `${name} is not an Ed25519 public key in PEM form`, {
          hint: 'Use the public half of an Ed25519 key pair: openssl pkey -in private.pem -pubout.',
          cause: err,
        })
      }
    }
    return new JwtAuth(keys, names)
  }

  get keyCount(): number {
    return this.keys.length
  }

  /** Where the keys came from (file paths; never key material), for the log. */
  get keyNames(): readonly string[] {
    return this.names
  }

  /** Verifies with `next`'s keys from now on; a `verify` already running finishes with the keys it started with. */
  replaceKeys(next: JwtAuth): void {
    this.keys = next.keys
    this.names = next.names
  }

  /** Verifies a token and its claims as at login. Throws AuthError. */
  async verify(token: string): Promise<JwtClaims> {
    if (token.length === 0) throw new AuthError('no JWT token given')
    if (token.length > JWT_TOKEN_BYTES_MAX) throw new AuthError(`JWT token longer than ${JWT_TOKEN_BYTES_MAX} bytes`)
    let payload: Record<string, unknown> | undefined
    let lastError: unknown
    const keys = this.keys
    for (const key of keys) {
      try {
        payload = (await jwtVerify(token, key, { algorithms: ['EdDSA'], clockTolerance: JWT_CLOCK_TOLERANCE_S })).payload
        break
      } catch (err) {
        lastError = err
      }
    }
    if (payload === undefined) throw new AuthError(`invalid JWT token: ${lastError instanceof Error ? lastError.message : String(lastError)}`)
    // A claim given twice (JSON.parse keeps the last) could read differently elsewhere: refused.
    const duplicate = duplicateTopLevelKey(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'))
    if (duplicate !== null) throw new AuthError(`invalid JWT token: claim "${duplicate}" appears twice`)
    const claims = parseClaims(payload)
    if (claims.scope === 'tenant' && claims.tenantId === null) throw new AuthError('jwt token scope is Tenant, but tenant id is missing', 'insufficient_scope')
    if (claims.scope !== 'tenant' && claims.scope !== 'pageserverapi') throw ineligible(claims.scope)
    return claims
  }
}

function ineligible(scope: string): AuthError {
  return new AuthError(`JWT scope '${scope}' is ineligible for Pageserver auth`, 'insufficient_scope')
}

function parseClaims(payload: Record<string, unknown>): JwtClaims {
  const scope = payload.scope
  if (typeof scope !== 'string' || !(JWT_SCOPES as readonly string[]).includes(scope)) {
    throw new AuthError(`JWT claims have ${typeof scope === 'string' ? `an unknown scope "${scope}"` : 'no scope'}`)
  }
  const tid = payload.tenant_id
  let tenantId: TenantId | null = null
  if (tid !== undefined && tid !== null) {
    if (typeof tid !== 'string' || !/^[0-9a-fA-F]{32}$/.test(tid)) throw new AuthError('JWT claim tenant_id is not a tenant id (32 hex characters)')
    tenantId = tid.toLowerCase() as TenantId
  }
  return { scope: scope as JwtScope, tenantId }
}

/**
 * May these claims act on `tenantId` (null = a server-wide operation)? Returns the refusal, or null.
 * Mirrors pageserver/src/auth.rs check_permission (without its panic on a tenant token lacking tenant_id).
 */
export function checkPermission(claims: JwtClaims, tenantId: TenantId | null): AuthError | null {
  switch (claims.scope) {
    case 'pageserverapi':
      return null
    case 'tenant':
      if (tenantId === null) return new AuthError('Attempt to access management api with tenant scope. Permission denied', 'insufficient_scope')
      if (claims.tenantId !== tenantId) return new AuthError('Tenant id mismatch. Permission denied', 'insufficient_scope')
      return null
    default:
      return ineligible(claims.scope)
  }
}
