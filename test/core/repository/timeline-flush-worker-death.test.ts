// The flush worker thread dying at any point of a flush (stopped after a varying delay, 20 times): the flush
// fails or succeeds, disk_consistent_lsn advances only with a durable L0, the frozen layer keeps answering
// and a retry writes exactly one L0; and no temp file of the dead thread is left behind (the L0 of a job
// without a stream, or the file of a stream aborted before the thread got to it, stayed until the next start).
import { readdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { Timeline, type TimelineOptions } from '../../../src/core/repository/timeline.js'
import { testTimelineMetadata } from '../../support/timeline-fixture.js'
import { ingestTestRecords, keyHistorySnapshot } from '../../support/timeline-ingest.js'
import { SlabPool } from '../../../src/core/layer/value-slabs.js'
import { sharedFlushWorker } from '../../../src/core/layer/flush-worker.js'
import { generateTenantId, generateTimelineId } from '../../../src/core/model/ids.js'
import { lsn } from '../../../src/core/pg/lsn.js'
const ingest = (tl: Timeline, from: number, records: number, keysN: number): number => ingestTestRecords(tl, from, records, 1, keysN)
const snapshot = keyHistorySnapshot
it('a flush whose worker dies midway: nothing advanced past what is durable, one L0 after the retry, no temp file left', async () => {
  let failures = 0
  for (let iter = 0; iter < 20; iter++) {
    const dir = mkdtempSync(join(tmpdir(), 'ps-wd-'))
    try {
      const opts: TimelineOptions = { noSync: iter % 2 === 0, waitLsnTimeoutMs: 2000, slabPool: new SlabPool({ slabBytes: 64 * 1024, residentBytesMax: 6 * 64 * 1024 }) }
      const tl = await Timeline.create(dir, generateTenantId(), generateTimelineId(), testTimelineMetadata(), null, opts)
      const end = ingest(tl, 0x100, 800, 40)
      const before = snapshot(tl, 40, end)
      tl.freeze()
      const p = tl.flush().catch((e: unknown) => e)
      const delay = iter % 10
      for (let i = 0; i < delay; i++) await new Promise((r) => setImmediate(r))
      if (iter % 3 === 0) await new Promise((r) => setTimeout(r, iter))
      await sharedFlushWorker().close()
      const r = await p
      if (r !== undefined) {
        failures++
        expect(r).toMatchObject({ code: 'FLUSH_WORKER_STOPPED' })
        expect(tl.diskConsistentLsn).toBe(lsn(0x100))
      }
      expect(snapshot(tl, 40, end)).toEqual(before)
      await tl.checkpoint()
      expect(tl.diskConsistentLsn).toBe(lsn(end))
      const layers = readdirSync(dir).filter((n) => n.includes('__'))
      expect(layers, `iteration ${iter}`).toHaveLength(1)
      expect(snapshot(tl, 40, end)).toEqual(before)
      await tl.close()
      const again = await Timeline.load(dir, tl.tenantId, tl.timelineId, null, opts)
      expect(snapshot(again, 40, end)).toEqual(before)
      await again.close()
    } finally { rmSync(dir, { recursive: true, force: true }) }
  }
  // Most stops land inside the flush (the rest after it finished): both paths were taken.
  expect(failures).toBeGreaterThan(0)
}, 120000)
