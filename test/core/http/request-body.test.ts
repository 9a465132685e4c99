// The management API reads request bodies strictly: an audit's POST timeline with a misspelled key, an
// ancestor LSN without an ancestor and a string for a boolean bootstrapped an empty timeline (201). Each of
// those is now a 400 that says what is wrong, before any operation runs; the same holds for the other bodies.
import { afterEach, describe, expect, it } from 'vitest'
import { createManagementServer, parseCreateTimeline, type CreateTimelineRequest, type ManagementOps } from '../../../src/core/http/management-api.js'
import { generateTenantId, generateTimelineId } from '../../../src/core/model/ids.js'
import { fakeOps } from './fake-ops.js'

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})

const tenant = generateTenantId()
const timeline = generateTimelineId()

async function server(): Promise<{ base: string; ran: unknown[] }> {
  const ran: unknown[] = []
  const ops: ManagementOps = {
    ...fakeOps(),
    createTimeline: async (_t, req) => (ran.push(req), {}),
    setWalSource: async (_t, _tl, src) => (ran.push(src), {}),
    syncTimeline: async (_t, _tl, until) => (ran.push(until), {}),
    createTenant: async (id) => (ran.push(id), { tenantId: id ?? tenant }),
  }
  const http = createManagementServer(ops, null)
  await http.listen('127.0.0.1', 0)
  cleanups.push(() => http.close())
  return { base: `http://127.0.0.1:${http.address.port}`, ran }
}

async function send(base: string, method: string, path: string, body: unknown): Promise<{ status: number; msg: string; code: string; hint: string | null }> {
  const res = await fetch(base + path, { method, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
  const json = (await res.json()) as { msg: string; code: string; hint: string | null }
  return { status: res.status, ...json }
}

describe('POST /v1/tenant/:t/timeline', () => {
  it("the audit's body is 400 naming the misspelled key and the one meant", async () => {
    const { base, ran } = await server()
    const r = await send(base, 'POST', `/v1/tenant/${tenant}/timeline`, { ancestor_start_lsn: '0/1', data_checksums: 'yes', import_fromm: { conn_string: 'host=x' } })
    expect([r.status, r.code]).toEqual([400, 'BAD_REQUEST'])
    expect(r.msg).toBe('unknown field "import_fromm" in the request body; did you mean "import_from"?')
    expect(r.hint).toContain('"new_timeline_id"')
    expect(ran).toEqual([])
  })

  it('refuses wrong types and combinations that would drop a field', async () => {
    const { base, ran } = await server()
    const anc = generateTimelineId()
    const cases: Array<[unknown, RegExp]> = [
      [{ data_checksums: 'yes' }, /^data_checksums must be true or false, got the string "yes"$/],
      [{ data_checksums: 1 }, /got the number 1/],
      [{ ancestor_start_lsn: '0/1' }, /^ancestor_start_lsn needs ancestor_timeline_id/],
      [{ ancestor_timeline_id: anc, import_from: { conn_string: 'host=x' } }, /^import_from and ancestor_timeline_id exclude each other/],
      [{ ancestor_timeline_id: anc, data_checksums: true }, /^data_checksums applies to a bootstrapped timeline only/],
      [{ pg_version: '15' }, /^pg_version must be the number 15 \(the only PostgreSQL version served\), got the string "15"$/],
      [{ pg_version: 14 }, /got the number 14$/],
      [{ import_from: { conn_string: 'host=x', slot: 's' } }, /^unknown field "slot" in import_from; did you mean "slot_name"\?$/],
      [{ import_from: 'host=x' }, /^import_from must be a JSON object$/],
      [{ new_timeline_id: 5 }, /^new_timeline_id must be a string, got the number 5$/],
      [[], /^the request body must be a JSON object$/],
    ]
    for (const [body, re] of cases) {
      const r = await send(base, 'POST', `/v1/tenant/${tenant}/timeline`, body)
      expect([r.status, r.code], JSON.stringify(body)).toEqual([400, 'BAD_REQUEST'])
      expect(r.msg, JSON.stringify(body)).toMatch(re)
    }
    expect(ran).toEqual([])
  })

  it('accepts the three shapes, with null as absent', () => {
    const anc = generateTimelineId()
    expect(parseCreateTimeline(undefined)).toEqual({})
    expect(parseCreateTimeline({ new_timeline_id: timeline, pg_version: 15, data_checksums: true })).toEqual<CreateTimelineRequest>({ newTimelineId: timeline, dataChecksums: true })
    expect(parseCreateTimeline({ ancestor_timeline_id: anc, ancestor_start_lsn: '0/16B3748', pg_version: null })).toEqual<CreateTimelineRequest>({ ancestorTimelineId: anc, ancestorStartLsn: 0x16b3748n as never })
    expect(parseCreateTimeline({ import_from: { conn_string: 'host=x', slot_name: 's' }, ancestor_timeline_id: null })).toEqual<CreateTimelineRequest>({ importFrom: { connString: 'host=x', slotName: 's' } })
  })
})

describe('the other bodies', () => {
  it('POST /v1/tenant, sync and wal_source refuse unknown fields too, and accept their own', async () => {
    const { base, ran } = await server()
    const tl = `/v1/tenant/${tenant}/timeline/${timeline}`
    const refused: Array<[string, string, unknown, string]> = [
      ['POST', '/v1/tenant', { tenant_id: tenant }, 'unknown field "tenant_id" in the request body; did you mean "new_tenant_id"?'],
      ['POST', `${tl}/sync`, { untill: '0/1' }, 'unknown field "untill" in the request body; did you mean "until"?'],
      ['PUT', `${tl}/wal_source`, { connstring: 'host=x' }, 'unknown field "connstring" in the request body; did you mean "conn_string"?'],
    ]
    for (const [method, path, body, msg] of refused) {
      const r = await send(base, method, path, body)
      expect([r.status, r.code, r.msg], path).toEqual([400, 'BAD_REQUEST', msg])
    }
    expect(ran).toEqual([])
    expect((await send(base, 'POST', '/v1/tenant', { new_tenant_id: tenant })).status).toBe(201)
    expect((await send(base, 'POST', `${tl}/sync`, { until: '0/10' })).status).toBe(200)
    expect((await send(base, 'PUT', `${tl}/wal_source`, { conn_string: 'host=x', slot_name: null })).status).toBe(200)
    expect(ran).toEqual([tenant, 0x10n, { connString: 'host=x' }])
  })
})
