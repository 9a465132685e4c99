/**
 * The read contract every layer kind implements (in-memory, delta file, image file), so the timeline's
 * read path walks them alike: newest layer first, each appending the values of one key, newest first.
 *
 * `getValues(key, lsnCeil, out, lsnFloor?)` appends the values of `key` with lsnFloor <= lsn <= lsnCeil
 * that the layer holds, newest first, stopping after the first will-init value (an image or a record that
 * initialises the page), and says what the caller must do next:
 *   - 'complete':   the last value appended is will-init; nothing older is needed.
 *   - 'incomplete': zero or more values appended, none will-init; continue with the next older layer.
 *   - 'missing':    image layers only: the key lies in the layer's key range but is absent, so it does not
 *                   exist at that LSN (image layers hold every live key of their range); stop.
 * `lsnFloor` (default 0) is the layer map's floor when an image layer sits inside a delta layer's LSN range.
 * Returned values are never overwritten later, but file layers slice small ones from shared 64 KiB slabs:
 * a value kept for long keeps its slab alive (copy it to cache it). File layers hand out values nobody else
 * holds (fresh reads, or copies out of the value cache), so changing one changes nothing stored.
 */
import type { Key } from '../model/key.js'
import type { Lsn } from '../pg/lsn.js'

export const LOOKUP = { complete: 'complete', incomplete: 'incomplete', missing: 'missing' } as const
export type LookupResult = (typeof LOOKUP)[keyof typeof LOOKUP]

/** A value found by a lookup. */
export interface LsnValue {
  lsn: Lsn
  value: Buffer
}

export interface ReadableLayer {
  getValues(key: Key, lsnCeil: Lsn, out: LsnValue[], lsnFloor?: Lsn): LookupResult
}
