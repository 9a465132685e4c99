/**
 * Reading PostgreSQL objects from a timeline at an LSN: relation existence and size, pages (rebuilt by
 * redo when their newest version is WAL), database size, SLRU segments, directories.
 *
 * Semantics follow Neon's page service: a block past the end of a relation reads as zeros; the size of a
 * missing FSM or VM fork is 0 (PostgreSQL probes them); a missing main fork is NotFound. Pages served for a
 * cluster with data checksums get a freshly computed checksum (WAL images and redo results carry stale ones).
 *
 * The GetPage path, and what keeps it short: relation existence and size come from the timeline's image
 * cache (Timeline.getImageCached: a map lookup while the relation's directory and size did not change) with
 * directories decoded once into sets; a page served before whose newest version is still that image comes
 * from the process-wide page cache (page-cache.ts); otherwise the page is one history lookup, an image is
 * served as read (layers hand out values nobody else holds, so no copy is needed to set its checksum), and
 * the checksum of an image version served before is remembered, since (key, LSN) names the same bytes
 * forever. Pages that need redo are rebuilt each time.
 */
import { CorruptionError, NotFoundError } from '../lib/errors.js'
import type { Key } from '../model/key.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { ForkNumber, formatRelTag, type BufferTag, type RelTag } from '../pg/reltag.js'
import { SLRU_PAGES_PER_SEGMENT, type SlruKindFork } from '../pg/slru.js'
import { BLCKSZ } from '../pg/wal-record.js'
import { pageChecksum, setPageChecksum } from '../redo/page/checksum.js'
import { pageIsNew, setPdChecksum } from '../redo/page/page.js'
import type { RedoRecord } from '../redo/engine.js'
import type { KeyHistory, Timeline } from '../repository/timeline.js'
import { sharedPageCache, type PageCache, type PageCacheSpace } from './page-cache.js'
import {
  dbDirKey,
  decodeBlockCount,
  decodeDbDir,
  decodeRelDir,
  decodeU32Set,
  keyToBufferTag,
  relBlockKeyCached,
  relDirKey,
  relSizeKey,
  slruBlockKey,
  slruDirKey,
  slruSegmentSizeKey,
  type DbDirEntry,
} from './mapping.js'

/** What reads need from redo: the walredo manager (pool of worker processes) implements it. */
export interface RedoService {
  redo(req: { tag: BufferTag; base: Buffer | null; records: RedoRecord[] }): Promise<Buffer>
}

export interface ReadOptions {
  /** Compute pd_checksum on served relation pages (the primary runs with data checksums). */
  dataChecksums: boolean
  /** Where served image pages are kept (page-cache.ts); null: nowhere. Default: the process-wide cache. */
  pageCache?: PageCache | null
}

/** Served images whose checksum is remembered (see DatadirReader.setImageChecksum). */
export const IMAGE_CHECKSUMS_MAX = 16_384

/** A relation fork as one number: relNode (u32) and forkNum (u8) fit 40 bits, exact in a double. */
function relDirMember(relNode: number, forkNum: number): number {
  return relNode * 256 + forkNum
}

export class DatadirReader {
  /** Relation directories decoded into sets, by the (cached, shared) value they were decoded from. */
  private readonly relDirSets = new WeakMap<Buffer, Set<number>>()
  /** pd_checksum of image versions served, by key; oldest inserted dropped first (IMAGE_CHECKSUMS_MAX). */
  private readonly imageChecksums = new Map<Key, { lsn: Lsn; checksum: number }>()
  /** This reader's part of the page cache, or null. */
  private readonly pages: PageCacheSpace | null

  constructor(
    readonly timeline: Timeline,
    private readonly redoService: RedoService,
    private readonly opts: ReadOptions,
  ) {
    const cache = opts.pageCache === undefined ? sharedPageCache : opts.pageCache
    const pages = cache === null ? null : cache.space(timeline)
    this.pages = pages
    // The timeline's pages leave the shared cache with it (and no longer keep it reachable).
    if (pages !== null) timeline.onClose(() => cache!.drop(pages))
  }

  databases(lsn: Lsn): DbDirEntry[] {
    const v = this.timeline.getImageCached(dbDirKey(), lsn)
    return v ? decodeDbDir(v) : []
  }

  relations(spcNode: number, dbNode: number, lsn: Lsn): RelTag[] {
    const v = this.timeline.getImageCached(relDirKey(spcNode, dbNode), lsn)
    return (v ? decodeRelDir(v) : []).map((e) => ({ spcNode, dbNode, relNode: e.relNode, forkNum: e.forkNum }))
  }

  relExists(rel: RelTag, lsn: Lsn): boolean {
    const v = this.timeline.getImageCached(relDirKey(rel.spcNode, rel.dbNode), lsn)
    if (!v) return false
    let set = this.relDirSets.get(v)
    if (set === undefined) {
      set = new Set(decodeRelDir(v).map((e) => relDirMember(e.relNode, e.forkNum)))
      this.relDirSets.set(v, set)
    }
    return set.has(relDirMember(rel.relNode, rel.forkNum))
  }

  /** Size in blocks; a missing FSM or VM fork is 0, a missing main or init fork is NotFound. */
  relSize(rel: RelTag, lsn: Lsn): number {
    if (!this.relExists(rel, lsn)) {
      if (rel.forkNum === ForkNumber.Fsm || rel.forkNum === ForkNumber.VisibilityMap) return 0
      throw new NotFoundError('RELATION_NOT_FOUND', `relation ${formatRelTag(rel)} does not exist at ${formatLsn(lsn)}`, {
        hint: 'Check the relation (pg_relation_filepath) and the LSN; the relation may not exist yet or may have been dropped.',
      })
    }
    const v = this.timeline.getImageCached(relSizeKey(rel), lsn)
    return v ? decodeBlockCount(v) : 0
  }

  /**
   * The page of a relation block at `lsn`, as served (checksum set); past the end of the relation, a zero
   * page. Read-only: it may be the page cache's own buffer.
   */
  async getRelPage(rel: RelTag, blkno: number, lsn: Lsn): Promise<Buffer> {
    return this.relPage(rel, blkno, lsn)
  }

  /**
   * getRelPage answered at once when no redo is needed (a page from the page cache, an image with nothing
   * above it, a block past the end), else a promise of the redone page. Throws at once what it cannot read.
   */
  relPage(rel: RelTag, blkno: number, lsn: Lsn): Buffer | Promise<Buffer> {
    if (blkno >= this.relSize(rel, lsn)) return Buffer.alloc(BLCKSZ)
    return this.cachedPage(relBlockKeyCached(rel, blkno), blkno, lsn)
  }

  /**
   * The page of `key` at `lsn` through the page cache (read-only: it may be the cache's buffer): a cached
   * page valid there, else one cached at an older version with only the records since redone on it, else
   * its history from the layers. `blkno` is the block a relation page's checksum is computed for; null for
   * an SLRU page, which has none.
   */
  private cachedPage(key: Key, blkno: number | null, lsn: Lsn): Buffer | Promise<Buffer> {
    const cached = this.pages?.get(key, lsn) ?? null
    if (cached !== null) return cached
    const fromCache = this.fromCachedVersion(key, blkno, lsn)
    if (fromCache !== null) return fromCache
    const h = this.history(key, lsn)
    if (h.records.length === 0) {
      const page = h.image!.data
      if (blkno !== null && this.opts.dataChecksums) this.setImageChecksum(key, h.image!.lsn, page, blkno)
      this.pages?.offer(key, h.image!.lsn, lsn, page, blkno === null)
      return page
    }
    return this.redoAndOffer(key, blkno, lsn, h)
  }

  /**
   * The page at `lsn` from a page the page cache holds at an older version of it (an image, or a page
   * rebuilt by redo) when only records lie between: those records redone on top of it, the layers read
   * only down to that version. Null when the cache holds no such version.
   */
  private fromCachedVersion(key: Key, blkno: number | null, lsn: Lsn): Promise<Buffer> | Buffer | null {
    const c = this.pages?.versionAtOrBelow(key, lsn) ?? null
    if (c === null) return null
    const records = this.timeline.getKeyRecordsAbove(key, lsn, c.versionLsn)
    if (records === null) return null
    if (records.length === 0) {
      // Nothing newer: the cached page is the page at lsn (the cache could not prove it by itself).
      this.pages!.offer(key, c.versionLsn, lsn, c.page)
      return c.page
    }
    return this.redoAndOffer(key, blkno, lsn, { image: { lsn: c.versionLsn, data: c.page }, records, missing: false })
  }

  /** Redo of `h`, checksummed, offered to the page cache as the page of its newest record's version. */
  private async redoAndOffer(key: Key, blkno: number | null, lsn: Lsn, h: KeyHistory): Promise<Buffer> {
    const page = await this.redo(key, h)
    if (blkno !== null && this.opts.dataChecksums) setPageChecksum(page, blkno)
    // The page as of its newest record, which is the page at every LSN up to `lsn` (an SLRU page at once).
    this.pages?.offer(key, h.records[h.records.length - 1]!.lsn, lsn, page, blkno === null)
    return page
  }

  /**
   * setPageChecksum for an image version: its checksum is computed once and remembered, since the image of
   * (key, lsn) never changes, nor its block number. A new page (pd_upper 0) keeps its bytes, as PostgreSQL.
   */
  private setImageChecksum(key: Key, lsn: Lsn, page: Buffer, blkno: number): void {
    if (page.length !== BLCKSZ) throw new CorruptionError('BAD_PAGE_IMAGE', `image of ${key} has ${page.length} bytes`)
    if (pageIsNew(page)) return
    const known = this.imageChecksums.get(key)
    if (known !== undefined && known.lsn === lsn) {
      setPdChecksum(page, known.checksum)
      return
    }
    const checksum = pageChecksum(page, blkno)
    setPdChecksum(page, checksum)
    if (known !== undefined) {
      known.lsn = lsn
      known.checksum = checksum
      return
    }
    if (this.imageChecksums.size >= IMAGE_CHECKSUMS_MAX) this.imageChecksums.delete(this.imageChecksums.keys().next().value as Key)
    this.imageChecksums.set(key, { lsn, checksum })
  }

  /** Sum of the sizes of every relation fork of a database, in bytes. */
  dbSize(spcNode: number, dbNode: number, lsn: Lsn): bigint {
    let blocks = 0n
    for (const rel of this.relations(spcNode, dbNode, lsn)) {
      const v = this.timeline.getImageCached(relSizeKey(rel), lsn)
      if (v) blocks += BigInt(decodeBlockCount(v))
    }
    return blocks * BigInt(BLCKSZ)
  }

  slruSegments(kind: SlruKindFork, lsn: Lsn): number[] {
    const v = this.timeline.getImageCached(slruDirKey(kind), lsn)
    return v ? decodeU32Set(v, 'SLRU directory') : []
  }

  /**
   * A whole SLRU segment file (its pages in order). Through the page cache: a CLOG page's history is every
   * commit since its first image (no compaction makes newer ones), so rebuilding it for each backup cost
   * more with every transaction (an audit's backups went from 0.1 to 3 s in 35 minutes of pgbench); cached,
   * a read redoes only the records since the last one.
   */
  async slruSegment(kind: SlruKindFork, segno: number, lsn: Lsn): Promise<Buffer> {
    const sizeValue = this.timeline.getImageCached(slruSegmentSizeKey(kind, segno), lsn)
    if (!sizeValue || !this.slruSegments(kind, lsn).includes(segno)) {
      throw new NotFoundError('SLRU_SEGMENT_NOT_FOUND', `SLRU segment ${segno.toString(16).toUpperCase().padStart(4, '0')} does not exist at ${formatLsn(lsn)}`)
    }
    const pages = decodeBlockCount(sizeValue)
    if (pages > SLRU_PAGES_PER_SEGMENT) throw new CorruptionError('BAD_SLRU_SIZE', `SLRU segment ${segno} claims ${pages} pages`)
    const out = Buffer.alloc(pages * BLCKSZ)
    for (let p = 0; p < pages; p++) {
      const page = await this.cachedPage(slruBlockKey(kind, segno, p), null, lsn)
      // CLOG images of other page servers may carry trailing bytes; a page is 8192 bytes. Copied: the page may
      // be the cache's.
      page.copy(out, p * BLCKSZ, 0, BLCKSZ)
    }
    return out
  }

  /**
   * The value of a page key at `lsn`: its newest image, or a page rebuilt by redo. The buffer is the
   * caller's (a fresh read or a redo result).
   */
  async getPage(key: Key, lsn: Lsn): Promise<Buffer> {
    const h = this.history(key, lsn)
    if (h.records.length === 0) return h.image!.data
    return this.redo(key, h)
  }

  private history(key: Key, lsn: Lsn): KeyHistory {
    const h = this.timeline.getKeyHistory(key, lsn)
    if (h.missing) {
      throw new CorruptionError('PAGE_MISSING', `no version of page ${key} at or below ${formatLsn(lsn)}`, {
        hint: 'The relation claims this block but the repository holds no version of it.',
      })
    }
    return h
  }

  private redo(key: Key, h: KeyHistory): Promise<Buffer> {
    const tag = keyToBufferTag(key)
    if (tag === null) throw new CorruptionError('NOT_A_PAGE_KEY', `key ${key} holds WAL records but is not a page`)
    const base = h.image?.data ?? null
    if (base !== null && base.length !== BLCKSZ) throw new CorruptionError('BAD_BASE_IMAGE', `base image of ${key} has ${base.length} bytes`)
    return this.redoService.redo({ tag, base, records: h.records.map((r) => ({ endLsn: r.lsn, raw: r.raw })) })
  }
}
