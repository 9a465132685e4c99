/**
 * The HTTP management API of a running page server (listen_http_addr), on Neon's paths where one exists:
 *
 *   GET    /v1/status                                          {"id": 1}
 *   GET    /v1/tenant                                          [{"id", "state": {"slug": "Active"}, "timelines"}]
 *   POST   /v1/tenant                 {"new_tenant_id"?}       201 {"tenant_id"}
 *   GET    /v1/tenant/:t                                       {"id", "state": {"slug": "Active"}, "timelines"} (as in
 *                                                                  the list; 404 TENANT_NOT_FOUND)
 *   DELETE /v1/tenant/:t                                       200 {"tenantId", "deleted": true} (every timeline)
 *   GET    /v1/tenant/:t/timeline                              [timeline info with "state": "Active"; or {tenantId,
 *                                                                  timelineId, "state": "Broken", error} for one that
 *                                                                  failed to load]
 *   POST   /v1/tenant/:t/timeline     bootstrap {new_timeline_id?, pg_version?, data_checksums?} |
 *                                     branch {new_timeline_id?, ancestor_timeline_id, ancestor_start_lsn?} |
 *                                     import {new_timeline_id?, import_from: {conn_string, slot_name?}}
 *                                                                  201 timeline info
 *   GET    /v1/tenant/:t/timeline/:tl                          timeline info (as in the list); other routes on a
 *                                                                  broken timeline answer TIMELINE_BROKEN
 *   DELETE /v1/tenant/:t/timeline/:tl                          200 {"tenantId", "timelineId", "deleted": true}
 *   PUT    /v1/tenant/:t/timeline/:tl/checkpoint               freeze + flush; {tenantId, timelineId, diskConsistentLsn, layers}
 *   POST   /v1/tenant/:t/timeline/:tl/sync {until?}            wait for WAL up to `until` (default: the source's
 *                                                                  flush LSN now), flush; {lastRecordLsn, ...}
 *   PUT    /v1/tenant/:t/timeline/:tl/wal_source {conn_string, slot_name?}   stream this timeline's WAL from a
 *                                                                  PostgreSQL (e.g. one started on an export)
 *   POST   /v1/reload_auth_validation_keys                     read auth_validation_public_key_path again;
 *                                                                  200 {"keys": n}; if they cannot be loaded, the
 *                                                                  error (500 JWT_KEYS_RELOAD_FAILED) and the old
 *                                                                  keys stay in use (Neon's route; SIGHUP does the same)
 *   GET    /metrics                                            Prometheus text
 *
 * Bodies are read strictly (request-body.ts): an unknown field is 400 naming it, a field of the wrong JSON
 * type is 400, and so are combinations that would silently drop a field (ancestor_start_lsn without
 * ancestor_timeline_id; import_from with ancestor_timeline_id; data_checksums outside a bootstrap).
 * Timeline info uses our camelCase fields (the CLI's --json contract). Authentication (http_auth_type
 * NeonJWT): `Authorization: Bearer <jwt>`, checked before the body is read. 401 (UNAUTHORIZED) when the
 * header is missing or malformed or the token fails verification (bad signature or key, expired, `alg:
 * none`, malformed claims: RFC 6750's invalid_token); 403 (FORBIDDEN) for a valid token out of scope.
 * Neon answers 401 for a missing or malformed header as we do, but 403 "JWT authentication error" for a
 * token that fails verification; we follow RFC 6750 there, so a client can tell "send a (different)
 * token" from "this token may not do that". Tenant routes accept a `tenant` token for that tenant or
 * `pageserverapi`; server-wide routes need `pageserverapi`, and so does anything that gives the server a
 * connection string (PUT wal_source, POST timeline with import_from): the server would connect there with
 * the credentials it can find (PGPASSWORD, its password file), so a tenant's token could otherwise send them
 * to a host of its choosing. Neon takes no connection string from a tenant either (its WAL sources come from
 * the storage broker). /v1/status and /metrics are open (as Neon's allowlist; /metrics names every tenant and
 * timeline id, as Neon's does).
 *
 * Bounds: MANAGEMENT_CONNECTIONS_MAX open connections (more are closed as they are accepted) and
 * MANAGEMENT_HEADERS_TIMEOUT_MS to receive a request's headers; see http-server.ts.
 */
import { parseTenantId, parseTimelineId, type TenantId, type TimelineId } from '../model/ids.js'
import { parseLsn, type Lsn } from '../pg/lsn.js'
import { UsageError } from '../lib/errors.js'
import { AUTH_TOKEN_HINT, AuthError, checkPermission, type JwtAuth } from '../page-service/auth.js'
import { HttpError, JsonHttpServer, type RouteContext } from './http-server.js'
import { booleanField, bodyFields, describeJson, stringField } from './request-body.js'

/**
 * Open connections to the management API at most. It is a control plane: the CLI makes one request at a time
 * (two with its status probe), an orchestrator a few dozen. 128 leaves room for those and keeps a flood of
 * idle connections (22,000 of them exhausted a 20,000 file-descriptor limit, and with it the page service's
 * accepts) to 128 descriptors; the page service has its own cap (connectionsMax, 1000).
 */
export const MANAGEMENT_CONNECTIONS_MAX = 128
/**
 * Headers must arrive within 5 s (Node's default is 60 s). A management client sends its request line and
 * headers in one write right after connecting, so 5 s is generous even over a slow link; it is what bounds
 * how long a connection that never sends a request (slowloris) holds one of the MANAGEMENT_CONNECTIONS_MAX
 * slots, so after a flood stops the API answers again within about 5 s.
 */
export const MANAGEMENT_HEADERS_TIMEOUT_MS = 5_000

export interface ManagementServerOptions {
  /** The process log: handler failures at `error`, clients that hung up mid-request at `debug`. */
  log?: (level: 'debug' | 'error', message: string, fields?: Record<string, unknown>) => void
  /** Tests make these small. */
  connectionsMax?: number
  headersTimeoutMs?: number
}

export interface CreateTimelineRequest {
  newTimelineId?: TimelineId
  ancestorTimelineId?: TimelineId
  ancestorStartLsn?: Lsn
  dataChecksums?: boolean
  importFrom?: WalSourceRequest
}

/** A WAL source as a request gives it (the slot defaults to one named after the timeline). */
export interface WalSourceRequest {
  connString: string
  slotName?: string
}

/** What the running server does for each route (implemented in core/app). */
/** One tenant as the API sees it: its id and how many timelines it has. */
export interface TenantSummary {
  tenantId: string
  /** null when the tenant's directory cannot be read (`error` says why). */
  timelines: number | null
  error?: { code: string; message: string; hint: string | null }
}

export interface ManagementOps {
  listTenants(): Promise<TenantSummary[]>
  /** NotFoundError (TENANT_NOT_FOUND) for an unknown tenant. */
  getTenant(t: TenantId): Promise<TenantSummary>
  createTenant(id?: TenantId): Promise<{ tenantId: string }>
  /** Stops serving the tenant's timelines, then deletes the tenant with all of them. */
  deleteTenant(t: TenantId): Promise<{ tenantId: string; deleted: true }>
  listTimelines(t: TenantId): Promise<unknown[]>
  getTimeline(t: TenantId, tl: TimelineId): Promise<unknown>
  createTimeline(t: TenantId, req: CreateTimelineRequest): Promise<unknown>
  /** `force`: `?force=true` (see Tenant.checkDeletable). */
  deleteTimeline(t: TenantId, tl: TimelineId, opts?: { force?: boolean }): Promise<unknown>
  checkpoint(t: TenantId, tl: TimelineId): Promise<unknown>
  setWalSource(t: TenantId, tl: TimelineId, src: WalSourceRequest): Promise<unknown>
  /** Waits until WAL up to `until` (default: the source's flush LSN now) is ingested, then flushes. */
  syncTimeline(t: TenantId, tl: TimelineId, until: Lsn | undefined): Promise<unknown>
  /**
   * Reads the JWT validation keys again and uses them from now on (new connections, new requests). If they
   * cannot be loaded the old keys stay in use and this throws; UsageError when no JWT auth is configured.
   */
  reloadAuthKeys(): Promise<{ keys: number }>
  metrics(): string
}

const TIMELINE_CREATE_FIELDS = ['new_timeline_id', 'ancestor_timeline_id', 'ancestor_start_lsn', 'pg_version', 'data_checksums', 'import_from'] as const
const WAL_SOURCE_FIELDS = ['conn_string', 'slot_name'] as const

/**
 * A WAL source, `{conn_string, slot_name?}`: PUT wal_source's body (`within` null), or a timeline create's
 * `import_from` (`within` names it in errors).
 */
function parseWalSource(body: unknown, within: string | null): WalSourceRequest {
  const f = bodyFields(body, WAL_SOURCE_FIELDS, within ?? undefined)
  const name = (field: string) => (within === null ? field : `${within}.${field}`)
  const cs = stringField(f.conn_string, name('conn_string'))
  if (cs === undefined) throw new UsageError('BAD_REQUEST', `${name('conn_string')} is required`)
  const slot = stringField(f.slot_name, name('slot_name'))
  return slot === undefined ? { connString: cs } : { connString: cs, slotName: slot }
}

/** POST /v1/tenant/:t/timeline's body: a bootstrap, a branch (ancestor_timeline_id) or an import (import_from). */
export function parseCreateTimeline(body: unknown): CreateTimelineRequest {
  const b = bodyFields(body, TIMELINE_CREATE_FIELDS)
  const req: CreateTimelineRequest = {}
  const nt = stringField(b.new_timeline_id, 'new_timeline_id')
  if (nt !== undefined) req.newTimelineId = parseTimelineId(nt)
  const anc = stringField(b.ancestor_timeline_id, 'ancestor_timeline_id')
  if (anc !== undefined) req.ancestorTimelineId = parseTimelineId(anc)
  const lsn = stringField(b.ancestor_start_lsn, 'ancestor_start_lsn')
  if (lsn !== undefined) req.ancestorStartLsn = parseLsn(lsn, 'ancestor_start_lsn')
  if (b.pg_version !== undefined && b.pg_version !== null && b.pg_version !== 15) {
    throw new UsageError('BAD_REQUEST', `pg_version must be the number 15 (the only PostgreSQL version served), got ${describeJson(b.pg_version)}`)
  }
  const checksums = booleanField(b.data_checksums, 'data_checksums')
  if (b.import_from !== undefined && b.import_from !== null) req.importFrom = parseWalSource(b.import_from, 'import_from')
  if (req.ancestorStartLsn !== undefined && req.ancestorTimelineId === undefined) {
    throw new UsageError('BAD_REQUEST', 'ancestor_start_lsn needs ancestor_timeline_id (the timeline to branch from)')
  }
  if (req.importFrom && req.ancestorTimelineId !== undefined) {
    throw new UsageError('BAD_REQUEST', 'import_from and ancestor_timeline_id exclude each other: a timeline is imported from a primary or branched from an ancestor')
  }
  if (checksums !== undefined && (req.importFrom || req.ancestorTimelineId !== undefined)) {
    throw new UsageError('BAD_REQUEST', "data_checksums applies to a bootstrapped timeline only: a branch keeps its ancestor's setting, an import its primary's")
  }
  if (checksums !== undefined) req.dataChecksums = checksums
  return req
}

/** Neon's TenantInfo subset: every tenant we serve is Active (there is no attach/detach here). */
/** Neon's tenant shape: state Active, or Broken with the reason (a tenant whose directory cannot be read). */
function tenantJson(x: TenantSummary): { id: string; state: { slug: 'Active' } | { slug: 'Broken'; data: { reason: string; code: string } }; timelines: number | null } {
  const state = x.error === undefined ? ({ slug: 'Active' } as const) : ({ slug: 'Broken', data: { reason: x.error.message, code: x.error.code } } as const)
  return { id: x.tenantId, state, timelines: x.timelines }
}

/** A refused token as HTTP: 401 when it does not authenticate the caller, 403 when it may not do this. */
function refusedToken(e: AuthError): HttpError {
  return e.refusal === 'insufficient_scope'
    ? new HttpError(403, `Forbidden: JWT authentication error: ${e.message}`, 'FORBIDDEN', e.hint)
    : new HttpError(401, `Unauthorized: JWT authentication error: ${e.message}`, 'UNAUTHORIZED', e.hint)
}

export function createManagementServer(ops: ManagementOps, auth: JwtAuth | null, o: ManagementServerOptions = {}): JsonHttpServer {
  const guard = (tenant: boolean) => async (ctx: RouteContext) => {
    if (!auth) return
    const h = ctx.headers.authorization
    const m = typeof h === 'string' ? /^Bearer\s+(\S+)$/i.exec(h) : null
    if (!m) throw new HttpError(401, 'missing or malformed Authorization header (expected "Bearer <jwt>")', 'UNAUTHORIZED', AUTH_TOKEN_HINT)
    let claims
    try {
      claims = await auth.verify(m[1]!)
    } catch (e) {
      // Anything but an AuthError is a bug in verification: let it be a 500, not a refusal.
      if (e instanceof AuthError) throw refusedToken(e)
      throw e
    }
    const refusal = checkPermission(claims, tenant ? parseTenantId(ctx.params.tenant_id!) : null)
    if (refusal) throw refusedToken(refusal)
  }
  /** Checks again, for a request that turns out to need a server-wide token (import_from in a timeline create). */
  const serverWide = guard(false)
  const t = (c: RouteContext) => parseTenantId(c.params.tenant_id!)
  const tl = (c: RouteContext) => parseTimelineId(c.params.timeline_id!)
  return new JsonHttpServer({
    connectionsMax: o.connectionsMax ?? MANAGEMENT_CONNECTIONS_MAX,
    headersTimeoutMs: o.headersTimeoutMs ?? MANAGEMENT_HEADERS_TIMEOUT_MS,
    onError: (e) => o.log?.('error', 'management API handler failed', { message: e instanceof Error ? e.stack : String(e) }),
    onClientGone: (method, path) => o.log?.('debug', 'management API client hung up before its request was in', { method, path }),
  })
    .route('GET', '/v1/status', () => ({ json: { id: 1 } }))
    .route('GET', '/metrics', () => ({ text: ops.metrics(), contentType: 'text/plain; version=0.0.4' }))
    .route(
      'GET',
      '/v1/tenant',
      async () => ({ json: (await ops.listTenants()).map(tenantJson) }),
      guard(false),
    )
    .route(
      'POST',
      '/v1/tenant',
      async (c) => {
        // Neon's request also takes `generation` and tenant config fields; we have neither, so they are refused.
        const id = stringField(bodyFields(c.body, ['new_tenant_id']).new_tenant_id, 'new_tenant_id')
        const r = await ops.createTenant(id === undefined ? undefined : parseTenantId(id))
        return { status: 201, json: { tenant_id: r.tenantId } }
      },
      guard(false),
    )
    .route('GET', '/v1/tenant/:tenant_id', async (c) => ({ json: tenantJson(await ops.getTenant(t(c))) }), guard(true))
    .route('DELETE', '/v1/tenant/:tenant_id', async (c) => ({ json: await ops.deleteTenant(t(c)) }), guard(true))
    .route('GET', '/v1/tenant/:tenant_id/timeline', async (c) => ({ json: await ops.listTimelines(t(c)) }), guard(true))
    .route(
      'POST',
      '/v1/tenant/:tenant_id/timeline',
      async (c) => {
        const req = parseCreateTimeline(c.body)
        // A connection string makes this server connect where the caller says, with the credentials it can find
        // (PGPASSWORD, its password file): only a server-wide token may give one.
        if (req.importFrom) await serverWide(c)
        return { status: 201, json: await ops.createTimeline(t(c), req) }
      },
      guard(true),
    )
    .route('GET', '/v1/tenant/:tenant_id/timeline/:timeline_id', async (c) => ({ json: await ops.getTimeline(t(c), tl(c)) }), guard(true))
    .route('DELETE', '/v1/tenant/:tenant_id/timeline/:timeline_id', async (c) => ({ json: await ops.deleteTimeline(t(c), tl(c), { force: c.query.get('force') === 'true' }) }), guard(true))
    .route('PUT', '/v1/tenant/:tenant_id/timeline/:timeline_id/checkpoint', async (c) => ({ json: await ops.checkpoint(t(c), tl(c)) }), guard(true))
    .route(
      'POST',
      '/v1/tenant/:tenant_id/timeline/:timeline_id/sync',
      async (c) => {
        const until = stringField(bodyFields(c.body, ['until']).until, 'until')
        return { json: await ops.syncTimeline(t(c), tl(c), until === undefined ? undefined : parseLsn(until, 'until')) }
      },
      guard(true),
    )
    .route(
      'PUT',
      '/v1/tenant/:tenant_id/timeline/:timeline_id/wal_source',
      async (c) => {
        return { json: await ops.setWalSource(t(c), tl(c), parseWalSource(c.body, null)) }
      },
      // Server-wide only: see import_from above.
      guard(false),
    )
    .route('POST', '/v1/reload_auth_validation_keys', async () => ({ json: await ops.reloadAuthKeys() }), guard(false))
}
