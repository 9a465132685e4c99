// CREATE DATABASE ... STRATEGY FILE_COPY copies every page of the template as of the record. A template can be
// far larger than memory: each copied page must be stored before the next one is read, never all gathered
// first (an audit found the whole template held in memory until the last page was read).
import { describe, expect, it } from 'vitest'
import { WalIngest, type IngestSink } from '../../../src/core/datadir/ingest.js'
import { dbDirKey, encodeBlockCount, encodeDbDir, encodeRelDir, keyToBufferTag, relBlockKey, relDirKey, relSizeKey, relmapFileKey } from '../../../src/core/datadir/mapping.js'
import type { Key } from '../../../src/core/model/key.js'
import { decodeValue } from '../../../src/core/model/value.js'
import { lsn } from '../../../src/core/pg/lsn.js'
import { RM } from '../../../src/core/pg/rmgr.js'
import { decodeRecord } from '../../../src/core/pg/wal-record.js'
import { buildRecord } from '../redo/heap/record-builder.js'

const XLOG_DBASE_CREATE_FILE_COPY = 0x00
const SPC = 1663
const TEMPLATE = 1
const NEW_DB = 16500
const RELS = [{ relNode: 1259, forkNum: 0, nblocks: 5 }, { relNode: 1259, forkNum: 2, nblocks: 1 }, { relNode: 16384, forkNum: 0, nblocks: 7 }]

function fileCopyRecord(): Buffer {
  const main = Buffer.alloc(16)
  main.writeUInt32LE(NEW_DB, 0)
  main.writeUInt32LE(SPC, 4)
  main.writeUInt32LE(TEMPLATE, 8)
  main.writeUInt32LE(SPC, 12)
  return buildRecord({ rmid: RM.DBASE, info: XLOG_DBASE_CREATE_FILE_COPY, xid: 0, main })
}

describe('CREATE DATABASE with FILE_COPY', () => {
  it('copies the template page by page, storing each page before reading the next, and sizes, directory and relmap', async () => {
    const images = new Map<Key, Buffer>([
      [dbDirKey(), encodeDbDir([{ spcNode: SPC, dbNode: TEMPLATE, hasRelmap: true }])],
      [relDirKey(SPC, TEMPLATE), encodeRelDir(RELS)],
      [relmapFileKey(SPC, TEMPLATE), Buffer.alloc(512, 7)],
    ])
    for (const r of RELS) images.set(relSizeKey({ spcNode: SPC, dbNode: TEMPLATE, relNode: r.relNode, forkNum: r.forkNum }), encodeBlockCount(r.nblocks))
    const puts = new Map<Key, Buffer>()
    let readsAhead = 0
    let readsAheadMax = 0
    const sink: IngestSink = {
      put: (key, _at, value) => {
        if (keyToBufferTag(key)?.dbNode === NEW_DB) readsAhead--
        puts.set(key, value)
      },
      putRecord: () => undefined,
      reserveImage: (_, n) => Buffer.alloc(n),
      commitValue: () => undefined,
      putRecordAt: () => undefined,
      commitValueAt: () => undefined,
      readLatestImage: (key) => images.get(key) ?? null,
      readPage: async (key) => {
        readsAhead++
        readsAheadMax = Math.max(readsAheadMax, readsAhead)
        const tag = keyToBufferTag(key)!
        return Buffer.alloc(8192, (tag.relNode + tag.forkNum * 3 + tag.blkno) & 0xff)
      },
    }
    const w = new WalIngest(sink)
    const raw = fileCopyRecord()
    await w.ingest(decodeRecord(raw, lsn(0x1000000), lsn(0x1000000 + raw.length)))

    // At most one copied page in hand at any time.
    expect(readsAheadMax).toBe(1)
    for (const r of RELS) {
      const dst = { spcNode: SPC, dbNode: NEW_DB, relNode: r.relNode, forkNum: r.forkNum }
      expect(decodeValue(puts.get(relSizeKey(dst))!)).toMatchObject({ kind: 'image' })
      for (let blk = 0; blk < r.nblocks; blk++) {
        const v = decodeValue(puts.get(relBlockKey(dst, blk))!)
        expect(v.kind === 'image' && v.data[0]).toBe((r.relNode + r.forkNum * 3 + blk) & 0xff)
      }
    }
    expect(puts.has(relmapFileKey(SPC, NEW_DB))).toBe(true)
    expect(w.state.relationsOf(SPC, NEW_DB)).toHaveLength(RELS.length)
  })
})
