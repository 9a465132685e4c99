/**
 * Which files of a timeline directory a load opens as its layers, from their names and the metadata, before
 * any is opened:
 *   - a layer file reaching past disk_consistent_lsn is from a flush whose metadata never got written (a
 *     crash), or newer than metadata restored from a backup: it is `future`, and a writer moves it aside
 *     (future-layers.ts);
 *   - the others are the timeline's layers, and must be exactly those its metadata lists (metadata.ts): a
 *     listed one that is missing is LAYER_MISSING, since reading without it would rebuild its pages from
 *     older versions; an unlisted one is LAYER_NOT_LISTED, a file from elsewhere. Metadata written before the
 *     list existed has none, and then every file up to disk_consistent_lsn is taken, provided the L0 deltas
 *     (all a flush writes) follow each other without a gap up to disk_consistent_lsn: a gap is a missing
 *     file (LAYER_MISSING), whose pages would otherwise be rebuilt from older versions (an audit got a wrong
 *     page so). A missing first file cannot be told this way.
 */
import { lstatSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { CorruptionError } from '../lib/errors.js'
import type { TimelineId } from '../model/ids.js'
import { isL0, parseLayerFileName, type LayerDesc } from '../layer/layer-name.js'
import { formatLsn, lsn } from '../pg/lsn.js'
import type { TimelineMetadata } from './metadata.js'

export interface LayerSelection {
  readonly load: ReadonlyArray<{ readonly fileName: string; readonly desc: LayerDesc }>
  readonly future: readonly string[]
}

export function selectLayerFiles(dir: string, timelineId: TimelineId, fileNames: readonly string[], meta: TimelineMetadata): LayerSelection {
  const { files, missing } = classifyLayerFiles(fileNames, meta)
  const load: Array<{ fileName: string; desc: LayerDesc }> = []
  const future: string[] = []
  for (const { fileName, desc, state } of files) {
    if (state === 'future') future.push(fileName)
    else if (state === 'layer') load.push({ fileName, desc })
    else {
      throw new CorruptionError('LAYER_NOT_LISTED', `layer file ${join(dir, fileName)} is not one of the timeline's layers (its metadata does not list it)`, {
        hint: 'A file from elsewhere (another timeline, an older copy of this one?): move it out of the timeline directory.',
        details: { path: join(dir, fileName) },
      })
    }
  }
  if (meta.layers === undefined) checkL0Chain(dir, timelineId, load.map((l) => l.desc), meta)
  if (missing.length > 0) {
    const first = join(dir, missing[0]!)
    throw new CorruptionError(
      'LAYER_MISSING',
      `layer file ${first} of timeline ${timelineId} ${whatIsThere(first)}${missing.length > 1 ? ` (and ${missing.length - 1} more are missing)` : ''}: without it, pages would be rebuilt from older versions`,
      {
        hint: 'Restore the missing layer files from a backup of the workdir; the timeline is not served until they are back.',
        details: { missing },
      },
    )
  }
  return { load, future }
}

/** Without a list in the metadata: the L0 deltas must tile their LSN range up to disk_consistent_lsn. */
function checkL0Chain(dir: string, timelineId: TimelineId, descs: readonly LayerDesc[], meta: TimelineMetadata): void {
  // Other layers (images, compacted deltas) would cover ranges themselves: no simple rule, no check.
  if (descs.length === 0 || descs.some((d) => !isL0(d))) return
  const sorted = [...descs].sort((a, b) => (a.lsnRange.start < b.lsnRange.start ? -1 : a.lsnRange.start > b.lsnRange.start ? 1 : 0))
  let end: bigint = sorted[0]!.lsnRange.start
  for (const d of [...sorted, null]) {
    const start = d === null ? meta.diskConsistentLsn + 1n : d.lsnRange.start
    if (start !== end) {
      const [from, to] = [formatLsn(lsn(end)), formatLsn(lsn(start - 1n))]
      throw new CorruptionError(
        'LAYER_MISSING',
        `timeline ${timelineId} in ${dir} has no layer file for its WAL from ${from} to ${to} (its metadata lists no files; the L0 files before and after do not meet): without it, pages would be rebuilt from older versions`,
        {
          hint: 'Restore the missing layer file from a backup of the workdir; the timeline is not served until it is back.',
          details: { gapStart: from, gapEnd: to },
        },
      )
    }
    if (d !== null) end = d.lsnRange.end
  }
}

/** How a listed layer file is missing: not there at all, or something else than a regular file in its place. */
function whatIsThere(path: string): string {
  try {
    const st = lstatSync(path)
    if (st.isDirectory()) return 'is a directory, not a file'
    if (st.isFIFO()) return 'is a FIFO, not a file'
    if (st.isSymbolicLink()) {
      try {
        return statSync(path).isFile() ? 'is missing' : 'is a symbolic link to something that is not a file'
      } catch {
        return 'is a symbolic link to nothing (dangling)'
      }
    }
    if (!st.isFile()) return 'is not a regular file'
  } catch {
    // not there
  }
  return 'is missing'
}

/** What the metadata makes of a layer-named file (`layer list` shows it; a load refuses all but `layer`). */
export type LayerFileState = 'layer' | 'future' | 'not-listed'

/**
 * The rules of the header, without refusing anything (`layer list` shows them; `selectLayerFiles` refuses
 * what a load must not take): each layer-named file of `fileNames` with its state, in their order, and the
 * layers the metadata lists that are not there.
 */
export function classifyLayerFiles(
  fileNames: readonly string[],
  meta: TimelineMetadata,
): { files: Array<{ fileName: string; desc: LayerDesc; state: LayerFileState }>; missing: string[] } {
  const limit = meta.diskConsistentLsn + 1n
  const listed = meta.layers === undefined ? null : new Set(meta.layers)
  const files: Array<{ fileName: string; desc: LayerDesc; state: LayerFileState }> = []
  for (const fileName of fileNames) {
    const parsed = parseLayerFileName(fileName)
    if (parsed === null) continue
    const desc = parsed.desc
    const state: LayerFileState = desc.lsnRange.end > limit ? 'future' : listed !== null && !listed.delete(desc.name) ? 'not-listed' : 'layer'
    files.push({ fileName, desc, state })
  }
  return { files, missing: listed === null ? [] : [...listed].sort() }
}
