// The server's memory ceiling across timelines: the layer holding the oldest unflushed WAL that can still be
// frozen goes first. A timeline whose oldest WAL is already frozen (its flush under way) must not have its
// newer open layer cut again and again while another timeline's older open layer keeps waiting.
import { describe, expect, it } from 'vitest'
import { PageServer } from '../../../src/core/app/server.js'
import { lsn } from '../../../src/core/pg/lsn.js'
import { tempDirs } from '../../support/timeline-fixture.js'
import { contextFor, FIXTURE_LSN, tenantWithTimelines } from '../../support/tenant-fixture.js'
import { testKey } from '../../support/timeline-ingest.js'

const newDir = tempDirs('ps-ceiling-')

describe('memory ceiling across timelines', () => {
  it('freezes the open layer holding the oldest unflushed WAL, not a newer one of a timeline already flushing', async () => {
    const ctx = await contextFor(newDir(), ['listen_pg_addr="127.0.0.1:0"', 'listen_http_addr="127.0.0.1:0"', 'max_in_memory_layers_bytes=1', 'checkpoint_timeout="1h"'])
    const f = await tenantWithTimelines(ctx)
    const server = await PageServer.start(ctx)
    try {
      const root = server.service(f.tenantId, f.root).timeline
      const branch = server.service(f.tenantId, f.branch).timeline
      const base = Number(FIXTURE_LSN)
      // The branch's open layer holds WAL from just after the branch point.
      branch.putRecord(testKey(1), lsn(base + 0x10), Buffer.from('branch 1'), false)
      branch.finishRecords(lsn(base + 0x10), null)
      // The root's oldest WAL is frozen (waiting for its flush, as if one were under way), and its open layer
      // holds newer WAL than the branch's.
      root.putRecord(testKey(1), lsn(base + 0x08), Buffer.from('root 1'), false)
      root.finishRecords(lsn(base + 0x08), null)
      root.freeze()
      root.putRecord(testKey(1), lsn(base + 0x20), Buffer.from('root 2'), false)
      root.finishRecords(lsn(base + 0x20), null)
      expect(root.frozenLayerCount).toBe(1)
      ;(server as unknown as { tick(): void }).tick()
      // The branch's open layer (WAL from the branch point, base+1) is older than the root's (from base+9, opened
      // after the freeze): the branch goes first, the root's open layer is not cut.
      expect(branch.frozenLayerCount + (branch.diskConsistentLsn > FIXTURE_LSN ? 1 : 0)).toBe(1)
      expect(root.openLayerWalBytes).toBeGreaterThan(0n)
    } finally {
      await server.stop()
    }
  })
})
