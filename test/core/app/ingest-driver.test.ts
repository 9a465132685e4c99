// TimelineIngestDriver after a failed flush (a full disk, say): the error stops ingest, and once the cause is
// gone the next ingest or checkpoint retries the flush and goes on, instead of failing with the old error
// until a restart. The failure is injected as the flush tests do: a directory where the metadata's
// temporary file goes.
import { describe, expect, it } from 'vitest'
import { mkdirSync, rmdirSync } from 'node:fs'
import { join } from 'node:path'
import { TimelineIngestDriver } from '../../../src/core/app/ingest-driver.js'
import type { DatadirReader } from '../../../src/core/datadir/read.js'
import { METADATA_FILE, Timeline } from '../../../src/core/repository/timeline.js'
import { readMetadata } from '../../../src/core/repository/metadata.js'
import { TEMP_SUFFIX } from '../../../src/core/storage/durable-file.js'
import { generateTenantId, generateTimelineId } from '../../../src/core/model/ids.js'
import { keyFromFields } from '../../../src/core/model/key.js'
import { encodeValue, imageValue } from '../../../src/core/model/value.js'
import { lsn } from '../../../src/core/pg/lsn.js'
import type { DecodedRecord } from '../../../src/core/pg/wal-record.js'
import { tempDirs, testTimelineMetadata, TEST_TIMELINE_OPTS } from '../../support/timeline-fixture.js'

const newDir = tempDirs('ps-driver-')
const key = keyFromFields({ field1: 0, field2: 1663, field3: 5, field4: 16384, field5: 0, field6: 0 })
const policy = { checkpointDistanceBytes: 1 << 30, checkpointTimeoutMs: 3_600_000, maxInMemoryLayersBytes: 1 << 30 }

describe('TimelineIngestDriver after a failed flush', () => {
  it('retries the flush before taking more WAL or checkpointing, and goes on once it succeeds', async () => {
    const dir = newDir()
    const tl = await Timeline.create(dir, generateTenantId(), generateTimelineId(), testTimelineMetadata(), null, { ...TEST_TIMELINE_OPTS, flushThread: 'inline' })
    // The reader serves records that read pages back (none here).
    const driver = new TimelineIngestDriver(tl, null as unknown as DatadirReader, policy)
    tl.put(key, lsn(0x108), encodeValue(imageValue(Buffer.alloc(8192, 1))))
    tl.finishRecords(lsn(0x108), lsn(0x100))

    const blocker = join(dir, `${METADATA_FILE}${TEMP_SUFFIX}`)
    mkdirSync(blocker)
    // The background flush of a frozen layer fails (as the size and time policies start it).
    driver.freezeNow()
    await expect(driver.checkpoint()).rejects.toMatchObject({ kind: 'unavailable' })
    // Still failing: each attempt reports the failure, and nothing advanced.
    await expect(driver.ingestRecords([])).rejects.toMatchObject({ kind: 'unavailable' })
    await expect(driver.checkpoint()).rejects.toMatchObject({ kind: 'unavailable' })
    expect(tl.diskConsistentLsn).toBe(lsn(0x100))

    // The cause is gone: the next ingest retries the flush, and everything frozen becomes durable.
    rmdirSync(blocker)
    await driver.ingestRecords([])
    expect(tl.diskConsistentLsn).toBe(lsn(0x108))
    tl.put(key, lsn(0x110), encodeValue(imageValue(Buffer.alloc(8192, 2))))
    tl.finishRecords(lsn(0x110), lsn(0x108))
    expect(await driver.checkpoint()).toBe(lsn(0x110))
    await tl.close()
  })
})

/** What a PARAMETER_CHANGE record tells the driver (wal_log_hints or checksums on/off), without building one. */
function walSaysHintBits(driver: TimelineIngestDriver, v: boolean): void {
  const events = (driver.ingest as unknown as { checkpointIngest: { events: { onHintBitsLogged?: (v: boolean) => void } } }).checkpointIngest.events
  events.onHintBitsLogged!(v)
}

/** A fresh timeline in `dir` (flushes on this thread) and its driver. */
async function driverIn(dir: string): Promise<{ tl: Timeline; driver: TimelineIngestDriver }> {
  const tl = await Timeline.create(dir, generateTenantId(), generateTimelineId(), testTimelineMetadata(), null, { ...TEST_TIMELINE_OPTS, flushThread: 'inline' })
  return { tl, driver: new TimelineIngestDriver(tl, null as unknown as DatadirReader, policy) }
}

describe('TimelineIngestDriver: the hint-bits setting in the metadata', () => {
  it('writes a flip and a flip back in order (the durable value is the last one the WAL gave)', async () => {
    const { tl, driver } = await driverIn(newDir())
    const start = tl.metadata.hintBitsLogged
    walSaysHintBits(driver, !start)
    walSaysHintBits(driver, start) // before the first write lands
    await driver.checkpoint()
    expect(tl.metadata.hintBitsLogged).toBe(start)
    await tl.close()
  })

  it('tries a failed write again at the next checkpoint, which fails only while the cause stays', async () => {
    const dir = newDir()
    const { tl, driver } = await driverIn(dir)
    const want = !tl.metadata.hintBitsLogged
    const blocker = join(dir, `${METADATA_FILE}${TEMP_SUFFIX}`)
    mkdirSync(blocker)
    walSaysHintBits(driver, want)
    await expect(driver.checkpoint()).rejects.toMatchObject({ kind: 'unavailable' })
    rmdirSync(blocker)
    await driver.checkpoint()
    expect(tl.metadata.hintBitsLogged).toBe(want)
    expect(readMetadata(join(dir, METADATA_FILE)).hintBitsLogged).toBe(want)
    await driver.checkpoint() // and nothing is left failing
    await tl.close()
  })

  it('writes a flip asked for just before a close', async () => {
    const dir = newDir()
    const { tl, driver } = await driverIn(dir)
    const want = !tl.metadata.hintBitsLogged
    walSaysHintBits(driver, want)
    await tl.close()
    expect(readMetadata(join(dir, METADATA_FILE)).hintBitsLogged).toBe(want)
  })
})

describe('TimelineIngestDriver: a checkpoint during a batch', () => {
  it('waits for a batch whose ingest awaits midway (CREATE DATABASE reads pages back) and flushes it', async () => {
    const { tl, driver } = await driverIn(newDir())
    tl.put(key, lsn(0x108), encodeValue(imageValue(Buffer.alloc(8192, 1))))
    tl.finishRecords(lsn(0x108), lsn(0x100))
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    // The record's values go in, then its ingest waits (as CREATE DATABASE's reads do).
    ;(driver.ingest as unknown as { ingest: (rec: DecodedRecord) => Promise<void> }).ingest = (rec) => {
      tl.put(key, rec.endLsn, encodeValue(imageValue(Buffer.alloc(8192, 2))))
      return gate
    }
    const rec = { lsn: lsn(0x108), endLsn: lsn(0x110), xl_rmid: 10 } as unknown as DecodedRecord
    const batch = driver.ingestRecords([rec])
    // Asked while the values sit above last_record_lsn: before, the freeze was held off and nothing flushed.
    const checkpoint = driver.checkpoint()
    await new Promise((resolve) => setTimeout(resolve, 20))
    release()
    await batch
    expect(await checkpoint).toBe(lsn(0x110))
    expect(tl.diskConsistentLsn).toBe(lsn(0x110))
    await tl.close()
  })
})
