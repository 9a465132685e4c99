/**
 * MultiXact redo: pg_multixact/offsets and pg_multixact/members pages (pseudo-forks MultixactOffsets and
 * MultixactMembers), as PostgreSQL 15.18's multixact_redo / RecordNewMultiXact change them.
 *
 * Offsets pages: one u32 per MultiXactId (2,048 per page), the offset of its first member. Members pages:
 * 409 groups of 20 bytes (4 flag bytes, then 4 xids), 1,636 members per page, 12 bytes unused at the end.
 * Member offsets are u32 and wrap from 0xFFFFFFFF to 0; MultiXactIds wrap past 0xFFFFFFFF to 1.
 *
 * CREATE_ID (mid, moff, nmembers, members) changes:
 *  - the offsets page of `mid`: entry(mid) := moff;
 *  - since 15.16, the entry of the next multixid (mid + 1, or 1 after wraparound) := moff + nmembers (0
 *    skipped to 1), on the same page or on the next one. In recovery PostgreSQL first zeroes that next page
 *    when it does not exist yet (WAL of older minors logs its ZERO_OFF_PAGE only later). A page that does
 *    not exist reaches redo as zeros here anyway, so that step needs no special case: the next page is an
 *    ordinary (not will-init) target;
 *  - every members page holding offsets moff .. moff + nmembers - 1 (wrapping): the xid, and the member's
 *    status in its flag byte.
 * ZERO_MEM_PAGE zeroes a members page (will-init). ZERO_OFF_PAGE zeroes an offsets page, except when
 * PostgreSQL skips it: right after a CREATE_ID from an older minor pre-initialised that page (RecordNewMultiXact
 * zeroed it and wrote the next multixid's entry; multixact_redo then skips the ZERO_OFF_PAGE that follows).
 * The page then holds exactly that one entry and nothing else, and only then; redo recognises that state and
 * keeps the page. So ZERO_OFF_PAGE is not a will-init target: its result can depend on the page before.
 * TRUNCATE_ID removes segment files and changes no page: ingest uses its parser and the segment helpers.
 *
 * Worked example: CREATE_ID mid 2047, moff 4090, 2 members: offsets page 0 entry 2047 (bytes 8188..8191)
 * := 4090; next multixid 2048 is entry 0 of offsets page 1 := 4092; members 4090 and 4091 live on members
 * page 2 (4090 / 1636), group (4090 / 4) % 409 = 204 at byte 4080, flag bytes 4080 + 2 and 4080 + 3, xids at
 * 4080 + 4 + 2 * 4 and 4080 + 4 + 3 * 4.
 */
import { CorruptionError } from '../../lib/errors.js'
import { RM } from '../../pg/rmgr.js'
import {
  MULTIXACT_MEMBERGROUP_SIZE,
  MULTIXACT_MEMBERGROUPS_PER_PAGE,
  MULTIXACT_MEMBERS_PER_PAGE,
  MULTIXACT_OFFSETS_PER_PAGE,
  MXACT_MEMBERS_PER_MEMBERGROUP,
  SLRU_PAGES_PER_SEGMENT,
  SlruKind,
} from '../../pg/slru.js'
import type { DecodedRecord } from '../../pg/wal-record.js'
import { redoFailure, registerRmgrRedo, type ImplicitTarget, type RedoContext } from '../rmgr-redo.js'
import { parsePageNumber, slruTarget, withRecordErrors } from './common.js'

export const XLOG_MULTIXACT_ZERO_OFF_PAGE = 0x00
export const XLOG_MULTIXACT_ZERO_MEM_PAGE = 0x10
export const XLOG_MULTIXACT_CREATE_ID = 0x20
export const XLOG_MULTIXACT_TRUNCATE_ID = 0x30

export const FirstMultiXactId = 1
export const MaxMultiXactId = 0xffff_ffff
export const MaxMultiXactOffset = 0xffff_ffff
export const SizeOfMultiXactCreate = 12
export const SizeOfMultiXactMember = 8
export const SizeOfMultiXactTruncate = 20
export const MULTIXACT_FLAGBYTES_PER_GROUP = 4
export const MaxMultiXactStatus = 5
export const MULTIXACT_OFFSETS_PAGENO_MAX = Math.floor(MaxMultiXactId / MULTIXACT_OFFSETS_PER_PAGE)
export const MULTIXACT_MEMBERS_PAGENO_MAX = Math.floor(MaxMultiXactOffset / MULTIXACT_MEMBERS_PER_PAGE)
/**
 * Most members accepted in one CREATE_ID. A multixact has at most one member per running transaction,
 * far below this; the bound stops a corrupt count before it drives allocation or a long loop.
 */
export const MULTIXACT_MEMBERS_PER_RECORD_MAX = 16 * 1024 * 1024

// --- geometry (MultiXactIdToOffsetPage and friends) -----------------------------------------------------------

export function offsetsPageOf(multi: number): number {
  return Math.floor(multi / MULTIXACT_OFFSETS_PER_PAGE)
}
export function offsetsEntryOf(multi: number): number {
  return multi % MULTIXACT_OFFSETS_PER_PAGE
}
export function membersPageOf(offset: number): number {
  return Math.floor(offset / MULTIXACT_MEMBERS_PER_PAGE)
}
/** MXOffsetToFlagsOffset: byte offset of the member's group (its 4 flag bytes) within the page. */
export function memberFlagsOffsetOf(offset: number): number {
  return (Math.floor(offset / MXACT_MEMBERS_PER_MEMBERGROUP) % MULTIXACT_MEMBERGROUPS_PER_PAGE) * MULTIXACT_MEMBERGROUP_SIZE
}
/** MXOffsetToFlagsBitShift: the member's flag byte is this many bits into the group's u32 flag word. */
export function memberFlagsShiftOf(offset: number): number {
  return (offset % MXACT_MEMBERS_PER_MEMBERGROUP) * 8
}
/** MXOffsetToMemberOffset: byte offset of the member's xid within the page. */
export function memberXidOffsetOf(offset: number): number {
  return memberFlagsOffsetOf(offset) + MULTIXACT_FLAGBYTES_PER_GROUP + (offset % MXACT_MEMBERS_PER_MEMBERGROUP) * 4
}

/** The multixid after `multi`, skipping 0 (InvalidMultiXactId) on wraparound. */
export function nextMultiXactId(multi: number): number {
  const next = (multi + 1) >>> 0
  return next < FirstMultiXactId ? FirstMultiXactId : next
}

// --- records -------------------------------------------------------------------------------------------------

export interface MultiXactMember {
  readonly xid: number
  /** MultiXactStatus 0..5 (ForKeyShare, ForShare, ForNoKeyUpdate, ForUpdate, NoKeyUpdate, Update). */
  readonly status: number
}

export interface ParsedMultiXactCreate {
  readonly mid: number
  readonly moff: number
  readonly members: readonly MultiXactMember[]
}

export interface ParsedMultiXactTruncate {
  readonly oldestMultiDB: number
  readonly startTruncOff: number
  readonly endTruncOff: number
  readonly startTruncMemb: number
  readonly endTruncMemb: number
}

function bad(what: string): CorruptionError {
  return new CorruptionError('SLRU_BAD_RECORD', `malformed MultiXact WAL record: ${what}`, {
    hint: 'The WAL is corrupt or was not written by PostgreSQL 15.',
  })
}

/** xl_multixact_create: mid u32 | moff u32 | nmembers i32 | members (xid u32, status i32)[nmembers]. */
export function parseMultiXactCreate(data: Buffer): ParsedMultiXactCreate {
  if (data.length < SizeOfMultiXactCreate) throw bad(`CREATE_ID has ${data.length} bytes of main data, less than ${SizeOfMultiXactCreate}`)
  const nmembers = data.readInt32LE(8)
  if (nmembers < 0 || nmembers > MULTIXACT_MEMBERS_PER_RECORD_MAX) throw bad(`CREATE_ID has ${nmembers} members`)
  if (data.length < SizeOfMultiXactCreate + nmembers * SizeOfMultiXactMember) {
    throw bad(`CREATE_ID announces ${nmembers} members but has ${data.length} bytes of main data`)
  }
  const members = new Array<MultiXactMember>(nmembers)
  for (let i = 0; i < nmembers; i++) {
    const at = SizeOfMultiXactCreate + i * SizeOfMultiXactMember
    const status = data.readInt32LE(at + 4)
    if (status < 0 || status > MaxMultiXactStatus) throw bad(`member ${i} has status ${status}`)
    members[i] = { xid: data.readUInt32LE(at), status }
  }
  return { mid: data.readUInt32LE(0), moff: data.readUInt32LE(4), members }
}

/** xl_multixact_truncate: oldestMultiDB, startTruncOff, endTruncOff, startTruncMemb, endTruncMemb (u32 each). */
export function parseMultiXactTruncate(data: Buffer): ParsedMultiXactTruncate {
  if (data.length < SizeOfMultiXactTruncate) throw bad(`TRUNCATE_ID has ${data.length} bytes of main data, expected ${SizeOfMultiXactTruncate}`)
  return {
    oldestMultiDB: data.readUInt32LE(0),
    startTruncOff: data.readUInt32LE(4),
    endTruncOff: data.readUInt32LE(8),
    startTruncMemb: data.readUInt32LE(12),
    endTruncMemb: data.readUInt32LE(16),
  }
}

export function parseMultiXactZeroOffPage(data: Buffer): number {
  return parsePageNumber(data, 'MultiXact ZERO_OFF_PAGE', MULTIXACT_OFFSETS_PAGENO_MAX)
}

export function parseMultiXactZeroMemPage(data: Buffer): number {
  return parsePageNumber(data, 'MultiXact ZERO_MEM_PAGE', MULTIXACT_MEMBERS_PAGENO_MAX)
}

// --- truncation (for ingest) ---------------------------------------------------------------------------------

/** MultiXactIdPrecedes: modulo-2^32 order. */
export function multiXactIdPrecedes(multi1: number, multi2: number): boolean {
  return ((multi1 - multi2) | 0) < 0
}

/** PreviousMultiXactId: the multixid before `multi`, skipping 0. */
export function previousMultiXactId(multi: number): number {
  return multi === FirstMultiXactId ? MaxMultiXactId : (multi - 1) >>> 0
}

/** MultiXactOffsetPagePrecedes. */
export function multiXactOffsetPagePrecedes(page1: number, page2: number): boolean {
  const m1 = (page1 * MULTIXACT_OFFSETS_PER_PAGE + FirstMultiXactId + 1) >>> 0
  const m2 = (page2 * MULTIXACT_OFFSETS_PER_PAGE + FirstMultiXactId + 1) >>> 0
  return multiXactIdPrecedes(m1, m2) && multiXactIdPrecedes(m1, (m2 + MULTIXACT_OFFSETS_PER_PAGE - 1) >>> 0)
}

/** The cutoff page TRUNCATE_ID passes to SimpleLruTruncate for pg_multixact/offsets (PerformOffsetsTruncation). */
export function multiXactOffsetsCutoffPage(t: ParsedMultiXactTruncate): number {
  return offsetsPageOf(previousMultiXactId(t.endTruncOff))
}

/** SlruMayDeleteSegment for pg_multixact/offsets. */
export function multiXactOffsetsSegmentMayBeDeleted(segno: number, cutoffPage: number): boolean {
  const segpage = segno * SLRU_PAGES_PER_SEGMENT
  return multiXactOffsetPagePrecedes(segpage, cutoffPage) && multiXactOffsetPagePrecedes(segpage + SLRU_PAGES_PER_SEGMENT - 1, cutoffPage)
}

/**
 * PerformMembersTruncation: the members segments TRUNCATE_ID deletes, from the segment of startTruncMemb up
 * to (not including) the segment of endTruncMemb, wrapping after the last segment.
 */
export function multiXactMembersSegmentsToDelete(t: ParsedMultiXactTruncate): number[] {
  const maxSegment = Math.floor(MULTIXACT_MEMBERS_PAGENO_MAX / SLRU_PAGES_PER_SEGMENT)
  const end = Math.floor(membersPageOf(t.endTruncMemb) / SLRU_PAGES_PER_SEGMENT)
  const out: number[] = []
  // At most every segment once: the loop ends at `end`, which is a valid segment number.
  for (let seg = Math.floor(membersPageOf(t.startTruncMemb) / SLRU_PAGES_PER_SEGMENT); seg !== end; seg = seg === maxSegment ? 0 : seg + 1) {
    out.push(seg)
  }
  return out
}

// --- what CREATE_ID writes ---------------------------------------------------------------------------------------

/** The offsets entries CREATE_ID sets: entry(mid) and, since 15.16, entry(next multixid). */
export function createIdOffsetWrites(c: ParsedMultiXactCreate): Array<{ multi: number; offset: number }> {
  let nextOffset = (c.moff + c.members.length) >>> 0
  if (nextOffset === 0) nextOffset = 1
  return [
    { multi: c.mid, offset: c.moff },
    { multi: nextMultiXactId(c.mid), offset: nextOffset },
  ]
}

/** The members pages CREATE_ID writes, ascending by member offset (so a wrap lists the high pages first). */
export function createIdMemberPages(c: ParsedMultiXactCreate): number[] {
  const pages: number[] = []
  for (let i = 0; i < c.members.length; i++) {
    const p = membersPageOf((c.moff + i) >>> 0)
    if (pages[pages.length - 1] !== p) pages.push(p)
  }
  return pages
}

function multixactImplicitTargets(rec: DecodedRecord): ImplicitTarget[] {
  switch (rec.rmgrInfo) {
    case XLOG_MULTIXACT_ZERO_OFF_PAGE:
      return [slruTarget(SlruKind.MultixactOffsets, parseMultiXactZeroOffPage(rec.mainData()), false)]
    case XLOG_MULTIXACT_ZERO_MEM_PAGE:
      return [slruTarget(SlruKind.MultixactMembers, parseMultiXactZeroMemPage(rec.mainData()), true)]
    case XLOG_MULTIXACT_CREATE_ID: {
      const c = parseMultiXactCreate(rec.mainData())
      const out: ImplicitTarget[] = []
      for (const w of createIdOffsetWrites(c)) {
        const p = offsetsPageOf(w.multi)
        if (!out.some((t) => t.tag.blkno === p)) out.push(slruTarget(SlruKind.MultixactOffsets, p, false))
      }
      for (const p of createIdMemberPages(c)) out.push(slruTarget(SlruKind.MultixactMembers, p, false))
      return out
    }
    default:
      return []
  }
}

/**
 * Whether an offsets page is in the state a pre-initialising CREATE_ID leaves it: all zeros except the entry of
 * the next multixid, which is its first entry (entry 1 on page 0, since multixid 0 does not exist), and is
 * nonzero (RecordNewMultiXact never writes offset 0).
 */
export function offsetsPageIsPreInitialized(page: Buffer, pageno: number): boolean {
  const entryAt = (pageno === 0 ? 1 : 0) * 4
  if (page.readUInt32LE(entryAt) === 0) return false
  for (let i = 0; i < page.length; i += 4) {
    if (i !== entryAt && page.readUInt32LE(i) !== 0) return false
  }
  return true
}

function redoCreateId(ctx: RedoContext, page: Buffer, c: ParsedMultiXactCreate): boolean {
  const pageno = ctx.tag.blkno
  let touched = false
  if (ctx.tag.forkNum === SlruKind.MultixactOffsets) {
    for (const w of createIdOffsetWrites(c)) {
      if (offsetsPageOf(w.multi) !== pageno) continue
      page.writeUInt32LE(w.offset, offsetsEntryOf(w.multi) * 4)
      touched = true
    }
    return touched
  }
  for (let i = 0; i < c.members.length; i++) {
    const offset = (c.moff + i) >>> 0
    if (membersPageOf(offset) !== pageno) continue
    const m = c.members[i]!
    page.writeUInt32LE(m.xid, memberXidOffsetOf(offset))
    // The status is one byte of the group's little-endian flag word: write that byte.
    page[memberFlagsOffsetOf(offset) + memberFlagsShiftOf(offset) / 8] = m.status
    touched = true
  }
  return touched
}

function multixactRedoSlru(ctx: RedoContext, page: Buffer): void {
  const data = ctx.rec.mainData()
  const kind = ctx.tag.forkNum
  switch (ctx.rec.rmgrInfo) {
    case XLOG_MULTIXACT_ZERO_OFF_PAGE: {
      const pageno = withRecordErrors(ctx, () => parseMultiXactZeroOffPage(data))
      if (kind !== SlruKind.MultixactOffsets || ctx.tag.blkno !== pageno) throw redoFailure(ctx, `the record zeroes offsets page ${pageno}, not this page`)
      if (!offsetsPageIsPreInitialized(page, pageno)) page.fill(0)
      return
    }
    case XLOG_MULTIXACT_ZERO_MEM_PAGE: {
      const pageno = withRecordErrors(ctx, () => parseMultiXactZeroMemPage(data))
      if (kind !== SlruKind.MultixactMembers || ctx.tag.blkno !== pageno) throw redoFailure(ctx, `the record zeroes members page ${pageno}, not this page`)
      page.fill(0)
      return
    }
    case XLOG_MULTIXACT_CREATE_ID: {
      const c = withRecordErrors(ctx, () => parseMultiXactCreate(data))
      if (kind !== SlruKind.MultixactOffsets && kind !== SlruKind.MultixactMembers) throw redoFailure(ctx, 'MultiXact records change only pg_multixact pages')
      if (!redoCreateId(ctx, page, c)) throw redoFailure(ctx, `multixact ${c.mid} writes nothing on this page`)
      return
    }
    default:
      throw redoFailure(ctx, 'TRUNCATE_ID removes segment files and changes no page')
  }
}

registerRmgrRedo(RM.MULTIXACT, { implicitTargets: multixactImplicitTargets, redoSlru: multixactRedoSlru })
