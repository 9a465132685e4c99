/**
 * Layer files above disk_consistent_lsn ("future" layers, layer-selection.ts) are moved aside into
 * `<timeline>/future-layers/`, not deleted, and deleted only once the timeline's own layers cover their
 * LSN range again.
 *
 * Why not delete them at once: the usual future file comes from a flush whose metadata write a crash cut
 * off, and the WAL it holds is streamed again from the slot, so it is redundant. But metadata restored from
 * an older backup makes newer, intact layers "future" too, and the slot has long moved past their WAL: those
 * files are then the only copy of it (an audit lost a branch's data so). Aside, they cost disk space until
 * the timeline has flushed past them (the usual case: the next flush after the restart) and can be put back
 * by hand with the right metadata otherwise; the server logs each one it moves.
 */
import { mkdir, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { namesIn } from '../storage/directory.js'
import type { Lsn } from '../pg/lsn.js'
import { parseLayerFileName } from '../layer/layer-name.js'
import { fsyncDir, type SyncOptions } from '../storage/durable-file.js'
import { ioFailed } from '../storage/io-errors.js'

export const FUTURE_LAYERS_DIR = 'future-layers'

/** Moves `names` (files of `dir`) into FUTURE_LAYERS_DIR, replacing a file of the same name there. */
export async function moveFutureLayersAside(dir: string, names: readonly string[], opts: SyncOptions): Promise<void> {
  if (names.length === 0) return
  const aside = join(dir, FUTURE_LAYERS_DIR)
  try {
    await mkdir(aside, { recursive: true })
  } catch (e) {
    throw ioFailed('creating', aside, e)
  }
  for (const n of names) {
    try {
      await rename(join(dir, n), join(aside, n))
    } catch (e) {
      throw ioFailed('moving aside', join(dir, n), e)
    }
  }
  await fsyncDir(aside, opts)
  await fsyncDir(dir, opts)
}

/**
 * Deletes the files aside whose LSN range ends at or below `diskConsistentLsn` (the timeline's layers hold
 * that WAL again), and the directory once empty. Returns the names deleted and those still kept.
 */
export async function removeRedundantFutureLayers(dir: string, diskConsistentLsn: Lsn, opts: SyncOptions): Promise<{ removed: string[]; kept: string[] }> {
  const aside = join(dir, FUTURE_LAYERS_DIR)
  const names = await namesIn(aside)
  if (names === null) return { removed: [], kept: [] }
  const removed: string[] = []
  const kept: string[] = []
  for (const n of names) {
    const parsed = parseLayerFileName(n)
    if (parsed !== null && parsed.desc.lsnRange.end <= diskConsistentLsn + 1n) {
      try {
        await rm(join(aside, n), { force: true })
      } catch (e) {
        throw ioFailed('removing', join(aside, n), e)
      }
      removed.push(n)
    } else {
      kept.push(n)
    }
  }
  if (kept.length === 0) {
    await rm(aside, { recursive: true, force: true }).catch(() => {})
    await fsyncDir(dir, opts).catch(() => {})
  } else if (removed.length > 0) {
    await fsyncDir(aside, opts)
  }
  return { removed, kept }
}

/** The layer files kept aside in `dir` (none when there is no FUTURE_LAYERS_DIR). */
export async function futureLayersKept(dir: string): Promise<string[]> {
  return ((await namesIn(join(dir, FUTURE_LAYERS_DIR))) ?? []).filter((n) => parseLayerFileName(n) !== null)
}
