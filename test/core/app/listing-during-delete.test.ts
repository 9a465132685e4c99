// Listings of a running server while something is deleted: a timeline renamed to its tombstone between the
// directory listing and the metadata read is gone, not "Broken" with FILE_MISSING (an audit's monitoring
// would have alerted on every delete); the rest of the tenant is listed as usual. No PostgreSQL needed.
import { renameSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { listTimelinesIn } from '../../../src/core/app/timelines.js'
import { Repository } from '../../../src/core/repository/repository.js'
import { tenantOptions } from '../../../src/core/app/context.js'
import { tempDirs } from '../../support/timeline-fixture.js'
import { contextFor, tenantWithTimelines } from '../../support/tenant-fixture.js'

const newDir = tempDirs('ps-list-delete-')

describe('listing during a delete', () => {
  it('leaves out a timeline whose directory went away after it was listed', async () => {
    const ctx = await contextFor(newDir())
    const f = await tenantWithTimelines(ctx)
    const repo = await Repository.open(ctx.config.workdir, tenantOptions(ctx, true))
    try {
      const tenant = await repo.tenant(f.tenantId)
      // The delete's rename lands between the listing of the directory and the read of the branch's metadata.
      const listed = await listTimelinesIn(repo, f.tenantId, (id) => {
        if (id === f.branch) renameSync(tenant.timelineDir(id), `${tenant.timelinesDir}/.tmp-${id}-deleted-00000000`)
        return null
      })
      expect(listed.map((e) => [e.timelineId, e.state])).toEqual([[f.root, 'Active']])
    } finally {
      await repo.close()
    }
  })
})
