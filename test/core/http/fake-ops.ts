// ManagementOps for tests of the HTTP layer alone: the listing and creation routes answer (and record what
// ran); anything else rejects, so a test that reaches an operation it did not expect fails.
import type { ManagementOps } from '../../../src/core/http/management-api.js'
import { generateTenantId } from '../../../src/core/model/ids.js'

/** Ops that answer the listing routes and record what ran; the auth tests need no repository. */
export function fakeOps(ran: string[] = []): ManagementOps {
  const no = (what: string) => () => Promise.reject(new Error(`${what} is not expected here`))
  return {
    listTenants: async () => (ran.push('listTenants'), []),
    getTenant: no('getTenant'),
    createTenant: async (id) => (ran.push('createTenant'), { tenantId: id ?? generateTenantId() }),
    deleteTenant: no('deleteTenant'),
    listTimelines: async () => (ran.push('listTimelines'), []),
    getTimeline: no('getTimeline'),
    createTimeline: no('createTimeline'),
    deleteTimeline: no('deleteTimeline'),
    checkpoint: no('checkpoint'),
    setWalSource: no('setWalSource'),
    syncTimeline: no('syncTimeline'),
    reloadAuthKeys: no('reloadAuthKeys'),
    metrics: () => '',
  }
}

