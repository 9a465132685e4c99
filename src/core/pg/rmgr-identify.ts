/**
 * Record-type names of PostgreSQL 15 WAL records, as each resource manager's `rm_identify` returns them
 * and `pg_waldump` prints them ("INSERT+INIT", "FPI_FOR_HINT", "COMMIT", "INVALIDATION", ...).
 *
 * The names are data: one table per resource manager, keyed by the masked `xl_info`. Most identify
 * functions mask off the low nibble (XLR_INFO_MASK, flags like XLR_CHECK_CONSISTENCY) and keep the 0x80
 * "+INIT" bit, so a +INIT variant is its own entry. Three differ, and the table says how:
 *  - Transaction masks with XLOG_XACT_OPMASK (0x70): the HAS_INFO bit 0x80 never changes the name;
 *  - CommitTs and ReplicationOrigin compare the raw info byte, low nibble included;
 *  - Generic names every record "Generic".
 * An unknown type (or any record of a custom rmgr, 128..255) has no name: pg_waldump then prints
 * `UNKNOWN (%x)` with the masked info in lower-case hex, e.g. "UNKNOWN (f0)"; `recordTypeName` does too.
 */
import { RM } from './rmgr.js'

interface IdentifyRule {
  /** Bits of xl_info the identify function looks at. */
  readonly mask: number
  /** masked info -> name; absent means "unknown" */
  readonly names: Readonly<Record<number, string>>
  /** A name for every record, whatever its info (Generic). */
  readonly always?: string
}

const TYPE_BITS = 0xf0 // ~XLR_INFO_MASK
const XACT_OPMASK = 0x70
const RAW_INFO = 0xff

const RULES: Readonly<Record<number, IdentifyRule>> = {
  [RM.XLOG]: {
    mask: TYPE_BITS,
    names: {
      0x00: 'CHECKPOINT_SHUTDOWN',
      0x10: 'CHECKPOINT_ONLINE',
      0x20: 'NOOP',
      0x30: 'NEXTOID',
      0x40: 'SWITCH',
      0x50: 'BACKUP_END',
      0x60: 'PARAMETER_CHANGE',
      0x70: 'RESTORE_POINT',
      0x80: 'FPW_CHANGE',
      0x90: 'END_OF_RECOVERY',
      0xa0: 'FPI_FOR_HINT',
      0xb0: 'FPI',
      0xd0: 'OVERWRITE_CONTRECORD',
    },
  },
  [RM.XACT]: {
    mask: XACT_OPMASK,
    names: {
      0x00: 'COMMIT',
      0x10: 'PREPARE',
      0x20: 'ABORT',
      0x30: 'COMMIT_PREPARED',
      0x40: 'ABORT_PREPARED',
      0x50: 'ASSIGNMENT',
      0x60: 'INVALIDATION', // singular in xactdesc.c, unlike Standby's INVALIDATIONS
    },
  },
  [RM.SMGR]: { mask: TYPE_BITS, names: { 0x10: 'CREATE', 0x20: 'TRUNCATE' } },
  [RM.CLOG]: { mask: TYPE_BITS, names: { 0x00: 'ZEROPAGE', 0x10: 'TRUNCATE' } },
  [RM.DBASE]: { mask: TYPE_BITS, names: { 0x00: 'CREATE_FILE_COPY', 0x10: 'CREATE_WAL_LOG', 0x20: 'DROP' } },
  [RM.TBLSPC]: { mask: TYPE_BITS, names: { 0x00: 'CREATE', 0x10: 'DROP' } },
  [RM.MULTIXACT]: {
    mask: TYPE_BITS,
    names: { 0x00: 'ZERO_OFF_PAGE', 0x10: 'ZERO_MEM_PAGE', 0x20: 'CREATE_ID', 0x30: 'TRUNCATE_ID' },
  },
  [RM.RELMAP]: { mask: TYPE_BITS, names: { 0x00: 'UPDATE' } },
  [RM.STANDBY]: { mask: TYPE_BITS, names: { 0x00: 'LOCK', 0x10: 'RUNNING_XACTS', 0x20: 'INVALIDATIONS' } },
  [RM.HEAP2]: {
    mask: TYPE_BITS,
    names: {
      0x00: 'REWRITE',
      0x10: 'PRUNE',
      0x20: 'VACUUM',
      0x30: 'FREEZE_PAGE',
      0x40: 'VISIBLE',
      0x50: 'MULTI_INSERT',
      0xd0: 'MULTI_INSERT+INIT',
      0x60: 'LOCK_UPDATED',
      0x70: 'NEW_CID',
    },
  },
  [RM.HEAP]: {
    mask: TYPE_BITS,
    names: {
      0x00: 'INSERT',
      0x80: 'INSERT+INIT',
      0x10: 'DELETE',
      0x20: 'UPDATE',
      0xa0: 'UPDATE+INIT',
      0x30: 'TRUNCATE',
      0x40: 'HOT_UPDATE',
      0xc0: 'HOT_UPDATE+INIT',
      0x50: 'HEAP_CONFIRM',
      0x60: 'LOCK',
      0x70: 'INPLACE',
    },
  },
  [RM.BTREE]: {
    mask: TYPE_BITS,
    names: {
      0x00: 'INSERT_LEAF',
      0x10: 'INSERT_UPPER',
      0x20: 'INSERT_META',
      0x30: 'SPLIT_L',
      0x40: 'SPLIT_R',
      0x50: 'INSERT_POST',
      0x60: 'DEDUP',
      0x70: 'DELETE',
      0x80: 'UNLINK_PAGE',
      0x90: 'UNLINK_PAGE_META',
      0xa0: 'NEWROOT',
      0xb0: 'MARK_PAGE_HALFDEAD',
      0xc0: 'VACUUM',
      0xd0: 'REUSE_PAGE',
      0xe0: 'META_CLEANUP',
    },
  },
  [RM.HASH]: {
    mask: TYPE_BITS,
    names: {
      0x00: 'INIT_META_PAGE',
      0x10: 'INIT_BITMAP_PAGE',
      0x20: 'INSERT',
      0x30: 'ADD_OVFL_PAGE',
      0x40: 'SPLIT_ALLOCATE_PAGE',
      0x50: 'SPLIT_PAGE',
      0x60: 'SPLIT_COMPLETE',
      0x70: 'MOVE_PAGE_CONTENTS',
      0x80: 'SQUEEZE_PAGE',
      0x90: 'DELETE',
      0xa0: 'SPLIT_CLEANUP',
      0xb0: 'UPDATE_META_PAGE',
      0xc0: 'VACUUM_ONE_PAGE',
    },
  },
  [RM.GIN]: {
    mask: TYPE_BITS,
    names: {
      0x10: 'CREATE_PTREE',
      0x20: 'INSERT',
      0x30: 'SPLIT',
      0x40: 'VACUUM_PAGE',
      0x90: 'VACUUM_DATA_LEAF_PAGE',
      0x50: 'DELETE_PAGE',
      0x60: 'UPDATE_META_PAGE',
      0x70: 'INSERT_LISTPAGE',
      0x80: 'DELETE_LISTPAGE',
    },
  },
  [RM.GIST]: {
    mask: TYPE_BITS,
    names: {
      0x00: 'PAGE_UPDATE',
      0x10: 'DELETE',
      0x20: 'PAGE_REUSE',
      0x30: 'PAGE_SPLIT',
      0x60: 'PAGE_DELETE',
      0x70: 'ASSIGN_LSN',
    },
  },
  [RM.SEQ]: { mask: TYPE_BITS, names: { 0x00: 'LOG' } },
  [RM.SPGIST]: {
    mask: TYPE_BITS,
    names: {
      0x10: 'ADD_LEAF',
      0x20: 'MOVE_LEAFS',
      0x30: 'ADD_NODE',
      0x40: 'SPLIT_TUPLE',
      0x50: 'PICKSPLIT',
      0x60: 'VACUUM_LEAF',
      0x70: 'VACUUM_ROOT',
      0x80: 'VACUUM_REDIRECT',
    },
  },
  [RM.BRIN]: {
    mask: TYPE_BITS,
    names: {
      0x00: 'CREATE_INDEX',
      0x10: 'INSERT',
      0x90: 'INSERT+INIT',
      0x20: 'UPDATE',
      0xa0: 'UPDATE+INIT',
      0x30: 'SAMEPAGE_UPDATE',
      0x40: 'REVMAP_EXTEND',
      0x50: 'DESUMMARIZE',
    },
  },
  [RM.COMMIT_TS]: { mask: RAW_INFO, names: { 0x00: 'ZEROPAGE', 0x10: 'TRUNCATE' } },
  [RM.REPLORIGIN]: { mask: RAW_INFO, names: { 0x00: 'SET', 0x10: 'DROP' } },
  [RM.GENERIC]: { mask: RAW_INFO, names: {}, always: 'Generic' },
  [RM.LOGICALMSG]: { mask: TYPE_BITS, names: { 0x00: 'MESSAGE' } },
}

/** The name `rm_identify(info)` returns for this resource manager, or null where it returns NULL. */
export function rmIdentify(rmid: number, info: number): string | null {
  const rule = RULES[rmid]
  if (rule === undefined) return null // custom rmgrs: pg_waldump's default_identify
  if (rule.always !== undefined) return rule.always
  return rule.names[info & rule.mask] ?? null
}

/** The record type as pg_waldump prints it after "desc: ": the identify name, or "UNKNOWN (f0)". */
export function recordTypeName(rmid: number, info: number): string {
  return rmIdentify(rmid, info) ?? `UNKNOWN (${(info & TYPE_BITS).toString(16)})`
}
