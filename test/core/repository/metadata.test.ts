import { describe, expect, it } from 'vitest'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeMetadata, encodeMetadata, readMetadata, rootTimelineMetadata, writeMetadata, type TimelineMetadata } from '../../../src/core/repository/metadata.js'
import { lsn } from '../../../src/core/pg/lsn.js'
import { crc32c } from '../../../src/core/lib/crc32c.js'
import { generateTimelineId } from '../../../src/core/model/ids.js'

const base: TimelineMetadata = {
  diskConsistentLsn: lsn(0x1_6b37_48d8n),
  prevRecordLsn: lsn(0x1_6b37_4800n),
  lastRecordLsn: lsn(0x1_6b37_48d8n),
  ancestorTimeline: generateTimelineId(),
  ancestorLsn: lsn(0x1_0000_0028n),
  latestGcCutoffLsn: lsn(0),
  initdbLsn: lsn(0x1_5000_0028n),
  pgVersion: 15,
  walSource: { connString: 'host=127.0.0.1 port=5432 user=postgres', slotName: 'ps_slot', systemId: '7311155391938378418', pgTimeline: 1 },
  dataChecksums: true,
  hintBitsLogged: true,
  minReadableLsn: lsn(0x1_5000_0028n),
  createdAt: 1_700_000_000,
}

describe('timeline metadata', () => {
  it('round-trips through the file format', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ps-meta-'))
    try {
      const path = join(dir, 'metadata')
      await writeMetadata(path, base, { noSync: true })
      expect(readMetadata(path)).toEqual(base)
      expect(decodeMetadata(encodeMetadata({ ...base, ancestorTimeline: null, ancestorLsn: null, walSource: null, prevRecordLsn: null }), 'x')).toEqual({
        ...base,
        ancestorTimeline: null,
        ancestorLsn: null,
        walSource: null,
        prevRecordLsn: null,
      })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('detects a flipped byte anywhere in the file and names the file', () => {
    const good = encodeMetadata(base)
    for (let i = 0; i < good.length; i++) {
      const bad = Buffer.from(good)
      bad[i]! ^= 0x20
      expect(() => decodeMetadata(bad, '/x/metadata'), `offset ${i}`).toThrow(/\/x\/metadata/)
    }
  })

  it('refuses inconsistent LSNs on write and on read', () => {
    expect(() => encodeMetadata({ ...base, diskConsistentLsn: lsn(0x2_0000_0000n) })).toThrow(/disk_consistent_lsn > last_record_lsn/)
    expect(() => encodeMetadata({ ...base, ancestorLsn: null })).toThrow(/together/)
    expect(() => encodeMetadata({ ...base, prevRecordLsn: base.diskConsistentLsn })).toThrow(/prev_record_lsn/)
  })

  it('builds a root timeline that starts just below its first values and serves from them', () => {
    const at = lsn(0x1_6b37_4d48n)
    const m = rootTimelineMetadata(at, { pgVersion: 15, walSource: null, dataChecksums: true, hintBitsLogged: true })
    expect(m.diskConsistentLsn).toBe(at - 1n)
    expect(m.lastRecordLsn).toBe(at - 1n)
    expect(m.initdbLsn).toBe(at)
    expect(m.minReadableLsn).toBe(at)
    expect(m.ancestorTimeline).toBeNull()
    expect(decodeMetadata(encodeMetadata(m), 'test')).toEqual(m)
  })

  it('keeps the list of layer files when there is one; a list that is not one is corruption', () => {
    const m = { ...rootTimelineMetadata(lsn(0x200), { pgVersion: 15, walSource: null, dataChecksums: false, hintBitsLogged: false }), layers: ['a', 'b'] }
    expect(decodeMetadata(encodeMetadata(m), 'test').layers).toEqual(['a', 'b'])
    const bad = encodeMetadata({ ...m, layers: [] })
    const body = bad.subarray(16).toString('utf8').replace('"layers": []', '"layers": 7 ')
    const forged = Buffer.concat([bad.subarray(0, 16), Buffer.from(body)])
    forged.writeUInt32BE(crc32c(forged.subarray(16), crc32c(forged.subarray(0, 12))), 12)
    expect(() => decodeMetadata(forged, 'test')).toThrow(/layers is not a list of file names/)
  })

  it('reports a missing file as not found', () => {
    expect(() => readMetadata('/nonexistent/metadata')).toThrow(/does not exist/)
    const dir = mkdtempSync(join(tmpdir(), 'ps-meta-'))
    try {
      writeFileSync(join(dir, 'metadata'), Buffer.alloc(16 * 1024 * 1024 + 1))
      expect(() => readMetadata(join(dir, 'metadata'))).toThrow(/more than/)
      void readFileSync
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
