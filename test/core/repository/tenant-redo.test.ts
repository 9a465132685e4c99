// A tenant's redo worker pools end with the tenant: none is made after close() (nothing would ever close it).
import { describe, expect, it } from 'vitest'
import { withRepository } from '../../../src/core/app/context.js'
import { UnavailableError } from '../../../src/core/lib/errors.js'
import { tempDirs } from '../../support/timeline-fixture.js'
import { contextFor, tenantWithTimelines } from '../../support/tenant-fixture.js'

const newDir = tempDirs('ps-tenant-redo-')

describe('Tenant redo pools', () => {
  it('refuses a redo pool once the tenant is closed, instead of spawning workers no one will stop', async () => {
    const ctx = await contextFor(newDir())
    const f = await tenantWithTimelines(ctx)
    await withRepository(ctx, async (repo) => {
      const t = await repo.tenant(f.tenantId)
      const before = t.redoManager(false)
      expect(t.redoManager(false)).toBe(before)
      await t.close()
      expect(before.stats().closed).toBe(true)
      // A request racing the close (a page read during tenant delete) must not get a fresh pool: its workers
      // would live until the idle timeout, and the pool would stay in the server's process budget for good.
      let err: unknown
      try {
        t.redoManager(true)
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(UnavailableError)
      expect((err as UnavailableError).code).toBe('WALREDO_CLOSED')
      expect(t.redoStats()).toEqual([])
    })
  })
})
