/**
 * Record types of the XLOG resource manager (`xl_info & XLR_RMGR_INFO_MASK`, PostgreSQL 15
 * src/include/catalog/pg_control.h), in one place for ingest, redo, WAL verification and the synthetic WAL.
 * (The WAL decoder and the CRC walker keep XLOG_SWITCH locally: the walker's source runs in a worker thread
 * without imports, and the decoder tests it for every record.)
 */

export const XLOG_CHECKPOINT_SHUTDOWN = 0x00
export const XLOG_CHECKPOINT_ONLINE = 0x10
export const XLOG_NEXTOID = 0x30
export const XLOG_PARAMETER_CHANGE = 0x60
export const XLOG_END_OF_RECOVERY = 0x90
export const XLOG_FPI_FOR_HINT = 0xa0
export const XLOG_FPI = 0xb0

/** Offset of `bool wal_log_hints` in xl_parameter_change (six int32 settings before it). */
export const PARAMETER_CHANGE_WAL_LOG_HINTS_OFFSET = 24
