/**
 * PostgreSQL 15 resource managers: ids and names as `pg_waldump` prints them.
 *
 * Ids 0..21 are built in (src/include/access/rmgrlist.h); 128..255 are custom resource managers, new in
 * PostgreSQL 15, which we never redo (a record of one is "unsupported", never skipped silently).
 */

export const RM = {
  XLOG: 0,
  XACT: 1,
  SMGR: 2,
  CLOG: 3,
  DBASE: 4,
  TBLSPC: 5,
  MULTIXACT: 6,
  RELMAP: 7,
  STANDBY: 8,
  HEAP2: 9,
  HEAP: 10,
  BTREE: 11,
  HASH: 12,
  GIN: 13,
  GIST: 14,
  SEQ: 15,
  SPGIST: 16,
  BRIN: 17,
  COMMIT_TS: 18,
  REPLORIGIN: 19,
  GENERIC: 20,
  LOGICALMSG: 21,
} as const

export const RM_MAX_BUILTIN_ID = 21
export const RM_MIN_CUSTOM_ID = 128
export const RM_MAX_CUSTOM_ID = 255

const RMGR_NAMES: readonly string[] = [
  'XLOG',
  'Transaction',
  'Storage',
  'CLOG',
  'Database',
  'Tablespace',
  'MultiXact',
  'RelMap',
  'Standby',
  'Heap2',
  'Heap',
  'Btree',
  'Hash',
  'Gin',
  'Gist',
  'Sequence',
  'SPGist',
  'BRIN',
  'CommitTs',
  'ReplicationOrigin',
  'Generic',
  'LogicalMessage',
]

/** A valid rmid: built in, or in the custom range (as RmgrIdIsValid in PostgreSQL 15). */
export function rmgrIdIsValid(rmid: number): boolean {
  return (rmid >= 0 && rmid <= RM_MAX_BUILTIN_ID) || (rmid >= RM_MIN_CUSTOM_ID && rmid <= RM_MAX_CUSTOM_ID)
}

/** "Heap", "Btree", ...; custom rmgrs print as "custom###" as pg_waldump does for unknown ones. */
export function rmgrName(rmid: number): string {
  return RMGR_NAMES[rmid] ?? `custom${String(rmid).padStart(3, '0')}`
}
