/**
 * seq_mask (commands/sequence.c), in place: LSN, checksum and free space only. The sequence tuple itself
 * (last_value, log_cnt, is_called) and its frozen header must match exactly.
 */
import { maskPageLsnAndChecksum, maskUnusedSpace } from './bufmask.js'

export function seqMask(page: Buffer, _blkno: number): void {
  maskPageLsnAndChecksum(page)
  maskUnusedSpace(page)
}
