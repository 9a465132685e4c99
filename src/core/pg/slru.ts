/**
 * SLRU geometry of PostgreSQL 15 (pg_xact, pg_multixact) and how SLRU pages are named as redo targets.
 *
 * SLRU pages are plain 8 KiB pages without a page header, 32 to a segment file. A redo target names an SLRU
 * page with a "pseudo-fork" (0x40 pg_xact, 0x41 pg_multixact/offsets, 0x42 pg_multixact/members; relation
 * forks are 0..3), relation oids 0 and blkno = SLRU page number (segment * 32 + page within the segment).
 *
 * Worked example: xid 100000 -> CLOG page 100000 / 32768 = 3, byte (100000 % 32768) / 4 = 424,
 * shift (100000 % 4) * 2 = 0; page 3 lives in segment 0000 at offset 3 * 8192.
 */
export const SLRU_PAGES_PER_SEGMENT = 32

export const SlruKind = {
  Clog: 0x40,
  MultixactOffsets: 0x41,
  MultixactMembers: 0x42,
} as const
export type SlruKindFork = (typeof SlruKind)[keyof typeof SlruKind]

export function isSlruFork(forkNum: number): forkNum is SlruKindFork {
  return forkNum === SlruKind.Clog || forkNum === SlruKind.MultixactOffsets || forkNum === SlruKind.MultixactMembers
}

export const SLRU_DIRS: Readonly<Record<SlruKindFork, string>> = {
  [SlruKind.Clog]: 'pg_xact',
  [SlruKind.MultixactOffsets]: 'pg_multixact/offsets',
  [SlruKind.MultixactMembers]: 'pg_multixact/members',
}

/** Segment file name as PostgreSQL writes it: at least 4 upper-case hex digits ("%04X"). */
export function slruSegmentName(segno: number): string {
  return segno.toString(16).toUpperCase().padStart(4, '0')
}

// CLOG: 2 status bits per transaction.
export const CLOG_BITS_PER_XACT = 2
export const CLOG_XACTS_PER_BYTE = 4
export const CLOG_XACTS_PER_PAGE = 8192 * CLOG_XACTS_PER_BYTE
export const TRANSACTION_STATUS_IN_PROGRESS = 0x00
export const TRANSACTION_STATUS_COMMITTED = 0x01
export const TRANSACTION_STATUS_ABORTED = 0x02
export const TRANSACTION_STATUS_SUB_COMMITTED = 0x03

export function clogPageOf(xid: number): number {
  return Math.floor(xid / CLOG_XACTS_PER_PAGE)
}

// MultiXact offsets: one u32 per MultiXactId.
export const MULTIXACT_OFFSETS_PER_PAGE = 8192 / 4
// MultiXact members: groups of 4 flag bytes + 4 xids.
export const MXACT_MEMBERS_PER_MEMBERGROUP = 4
export const MULTIXACT_MEMBERGROUP_SIZE = 4 + 4 * 4
export const MULTIXACT_MEMBERGROUPS_PER_PAGE = Math.floor(8192 / MULTIXACT_MEMBERGROUP_SIZE)
export const MULTIXACT_MEMBERS_PER_PAGE = MULTIXACT_MEMBERGROUPS_PER_PAGE * MXACT_MEMBERS_PER_MEMBERGROUP
