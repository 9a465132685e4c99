// Positions that stand for the same WAL: a page boundary and the end of that page's header. A timeline's
// first readable LSN may sit after a header (a branch made there) while a backup of it names the boundary;
// reads, backups and branches at the boundary are taken at the first readable LSN instead of refused.
import { describe, expect, it } from 'vitest'
import { branchMetadata } from '../../../src/core/app/timelines.js'
import { liftToSameWal } from '../../../src/core/app/wal-position.js'
import { resolveBackupLsn } from '../../../src/core/app/export.js'
import { generateTenantId, generateTimelineId } from '../../../src/core/model/ids.js'
import { lsn, type Lsn } from '../../../src/core/pg/lsn.js'
import { Timeline } from '../../../src/core/repository/timeline.js'
import { tempDirs, testTimelineMetadata } from '../../support/timeline-fixture.js'

const newDir = tempDirs('ps-wal-position-')
const opts = { noSync: true, waitLsnTimeoutMs: 1000 }

/** A timeline whose first readable LSN is `from` and whose last record is `last` (no pg_control: 16 MiB segments). */
async function timelineFrom(from: Lsn, last: Lsn, over: Parameters<typeof testTimelineMetadata>[0] = {}): Promise<Timeline> {
  return Timeline.create(
    newDir(),
    generateTenantId(),
    generateTimelineId(),
    testTimelineMetadata({ diskConsistentLsn: last, lastRecordLsn: last, initdbLsn: from, minReadableLsn: from, ...over }),
    null,
    opts,
  )
}

describe('liftToSameWal', () => {
  it('raises a page boundary to the end of its header (short within a segment, long at its start), and nothing else', async () => {
    const tl = await timelineFrom(lsn(0x2e44018), lsn(0x5000000))
    try {
      expect(liftToSameWal(tl, lsn(0x2e44000), lsn(0x2e44018))).toBe(lsn(0x2e44018))
      expect(liftToSameWal(tl, lsn(0x3000000), lsn(0x3000028))).toBe(lsn(0x3000028))
      // A record can end between a short header's end and 0x28: not the same WAL.
      expect(liftToSameWal(tl, lsn(0x2e44000), lsn(0x2e44028))).toBe(lsn(0x2e44000))
      expect(liftToSameWal(tl, lsn(0x3000000), lsn(0x3000018))).toBe(lsn(0x3000000))
      // Not a boundary, or already readable: as it is.
      expect(liftToSameWal(tl, lsn(0x2e43ff8), lsn(0x2e44018))).toBe(lsn(0x2e43ff8))
      expect(liftToSameWal(tl, lsn(0x2e44020), lsn(0x2e44018))).toBe(lsn(0x2e44020))
    } finally {
      await tl.close()
    }
  })

  it('a backup or a branch at the page boundary before the first readable LSN is taken there, not refused', async () => {
    const tl = await timelineFrom(lsn(0x2e44018), lsn(0x2e45000))
    try {
      expect(resolveBackupLsn(tl, lsn(0x2e44000), null).lsn).toBe(lsn(0x2e44018))
      expect(() => resolveBackupLsn(tl, lsn(0x2e43ff8), null)).toThrow(expect.objectContaining({ code: 'LSN_BEFORE_START' }))
      // 0/1 aligns into the first page header, whose boundary is 0/0: refused as asked, not as 0/0.
      expect(() => resolveBackupLsn(tl, lsn(0x1), null)).toThrow(
        expect.objectContaining({ code: 'LSN_BEFORE_START', message: expect.stringMatching(/^LSN 0\/1 is before the first readable LSN 0\/2E44018/) }),
      )
      expect(branchMetadata(tl, lsn(0x2e44000)).ancestorLsn).toBe(lsn(0x2e44018))
    } finally {
      await tl.close()
    }
  })

  it('a branch or backup at the end of the header after the last record is taken at the last record, not refused', async () => {
    // pg_current_wal_insert_lsn() right after a WAL switch: 0/3000028, the last record ending at 0/3000000.
    const seg = await timelineFrom(lsn(0x100), lsn(0x3000000), { prevRecordLsn: lsn(0x2fffff0) })
    const page = await timelineFrom(lsn(0x100), lsn(0x2e44000))
    try {
      const b = branchMetadata(seg, lsn(0x3000028))
      expect([b.ancestorLsn, b.prevRecordLsn]).toEqual([lsn(0x3000000), lsn(0x2fffff0)])
      expect(resolveBackupLsn(seg, lsn(0x3000028), null)).toMatchObject({ lsn: lsn(0x3000000), prevLsn: lsn(0x2fffff0) })
      expect(branchMetadata(page, lsn(0x2e44018)).ancestorLsn).toBe(lsn(0x2e44000))
      // Past the header end, or a short header's end at a segment start, is WAL not there yet: refused.
      expect(() => branchMetadata(page, lsn(0x2e44020))).toThrow(expect.objectContaining({ code: 'BRANCH_LSN_INVALID' }))
      // The refusal names the LSN asked for, and where it was taken to.
      expect(() => branchMetadata(page, lsn(0x2e44021))).toThrow(expect.objectContaining({ message: expect.stringContaining('at 0/2E44021 (taken as 0/2E44028): it is above') }))
      expect(() => branchMetadata(seg, lsn(0x3000030))).toThrow(expect.objectContaining({ code: 'BRANCH_LSN_INVALID' }))
      expect(() => resolveBackupLsn(page, lsn(0x2e44020), null)).toThrow(expect.objectContaining({ code: 'LSN_NOT_YET_INGESTED' }))
    } finally {
      await seg.close()
      await page.close()
    }
  })

  it('a branch below the ancestor\'s own branch point says so, with what to do', async () => {
    const parent = await timelineFrom(lsn(0x100), lsn(0x2000))
    const dir = newDir()
    const child = await Timeline.create(
      dir,
      parent.tenantId,
      generateTimelineId(),
      testTimelineMetadata({ diskConsistentLsn: lsn(0x1000), lastRecordLsn: lsn(0x1000), ancestorTimeline: parent.timelineId, ancestorLsn: lsn(0x1000), minReadableLsn: lsn(0x1000) }),
      parent,
      opts,
    )
    try {
      expect(() => branchMetadata(child, lsn(0x800))).toThrow(
        expect.objectContaining({ code: 'BRANCH_LSN_INVALID', message: expect.stringContaining("below the ancestor's own branch point 0/1000"), hint: expect.stringContaining("ancestor's ancestor") }),
      )
    } finally {
      await child.close()
      await parent.close()
    }
  })
})
