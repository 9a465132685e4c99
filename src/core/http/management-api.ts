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
 *   GET    /metrics                                            Prometheus text
 *
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
 * the storage broker). /v1/status and /metrics are open (as Neon's allowlist).
 */
import { parseTenantId, parseTimelineId, type TenantId, type TimelineId } from '../model/ids.js'
import { parseLsn, type Lsn } from '../pg/lsn.js'
import { UsageError } from '../lib/errors.js'
import { AUTH_TOKEN_HINT, AuthError, checkPermission, type JwtAuth } from '../page-service/auth.js'
import { HttpError, JsonHttpServer, type RouteContext } from './http-server.js'

export interface CreateTimelineRequest {
  newTimelineId?: TimelineId
  ancestorTimelineId?: TimelineId
  ancestorStartLsn?: Lsn
  dataChecksums?: boolean
  importFrom?: { connString: string; slotName?: string }
}

/** What the running server does for each route (implemented in core/app). */
/** One tenant as the API sees it: its id and how many timelines it has. */
export interface TenantSummary {
  tenantId: string
  timelines: number
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
  /** `ignoreUnreadable`: `?force=true` (see Tenant.checkDeletable). */
  deleteTimeline(t: TenantId, tl: TimelineId, opts?: { ignoreUnreadable?: boolean }): Promise<unknown>
  checkpoint(t: TenantId, tl: TimelineId): Promise<unknown>
  setWalSource(t: TenantId, tl: TimelineId, src: { connString: string; slotName?: string }): Promise<unknown>
  /** Waits until WAL up to `until` (default: the source's flush LSN now) is ingested, then flushes. */
  syncTimeline(t: TenantId, tl: TimelineId, until: Lsn | undefined): Promise<unknown>
  metrics(): string
}

function str(v: unknown, what: string): string | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string') throw new UsageError('BAD_REQUEST', `${what} must be a string`)
  return v
}

function obj(body: unknown): Record<string, unknown> {
  if (body === undefined) return {}
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new UsageError('BAD_REQUEST', 'the request body must be a JSON object')
  return body as Record<string, unknown>
}

/** Neon's TenantInfo subset: every tenant we serve is Active (there is no attach/detach here). */
function tenantJson(x: TenantSummary): { id: string; state: { slug: 'Active' }; timelines: number } {
  return { id: x.tenantId, state: { slug: 'Active' }, timelines: x.timelines }
}

/** A refused token as HTTP: 401 when it does not authenticate the caller, 403 when it may not do this. */
function refusedToken(e: AuthError): HttpError {
  return e.refusal === 'insufficient_scope'
    ? new HttpError(403, `Forbidden: JWT authentication error: ${e.message}`, 'FORBIDDEN', e.hint)
    : new HttpError(401, `Unauthorized: JWT authentication error: ${e.message}`, 'UNAUTHORIZED', e.hint)
}

export function createManagementServer(ops: ManagementOps, auth: JwtAuth | null, onError?: (e: unknown) => void): JsonHttpServer {
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
  return new JsonHttpServer(onError)
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
        const id = str(obj(c.body).new_tenant_id, 'new_tenant_id')
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
        const b = obj(c.body)
        const req: CreateTimelineRequest = {}
        const nt = str(b.new_timeline_id, 'new_timeline_id')
        if (nt !== undefined) req.newTimelineId = parseTimelineId(nt)
        const anc = str(b.ancestor_timeline_id, 'ancestor_timeline_id')
        if (anc !== undefined) req.ancestorTimelineId = parseTimelineId(anc)
        const lsn = str(b.ancestor_start_lsn, 'ancestor_start_lsn')
        if (lsn !== undefined) req.ancestorStartLsn = parseLsn(lsn, 'ancestor_start_lsn')
        if (b.pg_version !== undefined && b.pg_version !== 15) throw new UsageError('BAD_REQUEST', `pg_version ${String(b.pg_version)} is not supported (15 only)`)
        if (b.data_checksums !== undefined) req.dataChecksums = b.data_checksums === true
        if (b.import_from !== undefined) {
          // A connection string makes this server connect where the caller says, with the credentials it can find
          // (PGPASSWORD, its password file): only a server-wide token may give one (CONNECTING_ROUTES_SCOPE).
          await serverWide(c)
          const f = obj(b.import_from)
          const cs = str(f.conn_string, 'import_from.conn_string')
          if (cs === undefined) throw new UsageError('BAD_REQUEST', 'import_from.conn_string is required')
          const slot = str(f.slot_name, 'import_from.slot_name')
          req.importFrom = slot === undefined ? { connString: cs } : { connString: cs, slotName: slot }
        }
        return { status: 201, json: await ops.createTimeline(t(c), req) }
      },
      guard(true),
    )
    .route('GET', '/v1/tenant/:tenant_id/timeline/:timeline_id', async (c) => ({ json: await ops.getTimeline(t(c), tl(c)) }), guard(true))
    .route('DELETE', '/v1/tenant/:tenant_id/timeline/:timeline_id', async (c) => ({ json: await ops.deleteTimeline(t(c), tl(c), { ignoreUnreadable: c.query.get('force') === 'true' }) }), guard(true))
    .route('PUT', '/v1/tenant/:tenant_id/timeline/:timeline_id/checkpoint', async (c) => ({ json: await ops.checkpoint(t(c), tl(c)) }), guard(true))
    .route(
      'POST',
      '/v1/tenant/:tenant_id/timeline/:timeline_id/sync',
      async (c) => {
        const until = str(obj(c.body).until, 'until')
        return { json: await ops.syncTimeline(t(c), tl(c), until === undefined ? undefined : parseLsn(until, 'until')) }
      },
      guard(true),
    )
    .route(
      'PUT',
      '/v1/tenant/:tenant_id/timeline/:timeline_id/wal_source',
      async (c) => {
        const b = obj(c.body)
        const cs = str(b.conn_string, 'conn_string')
        if (cs === undefined) throw new UsageError('BAD_REQUEST', 'conn_string is required')
        const slot = str(b.slot_name, 'slot_name')
        return { json: await ops.setWalSource(t(c), tl(c), slot === undefined ? { connString: cs } : { connString: cs, slotName: slot }) }
      },
      // Server-wide only: see import_from above.
      guard(false),
    )
}
