/**
 * Which WAL segment files a list of paths names: a pg_wal directory's segments (24 upper-case hex digits;
 * archive_status/, *.history and *.partial are other files), or segment files named one by one, sorted and
 * one per segment. A symbolic link named like a segment is followed, as pg_waldump follows it, and must lead
 * to a regular file. A promoted standby's pg_wal holds two timelines: `timeline` picks one (pg_waldump's
 * -t); without it WalFileReader refuses to guess. Names only: the files' contents are WalFileReader's.
 */
import { readdir, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { isNotFoundFsError, NotFoundError, UsageError } from '../lib/errors.js'
import { inputPathFailed, requireRegularFile } from '../storage/input-file.js'
import { walFileTimeline } from './wal-page.js'

/** Segment files named on a command line or found in one directory; a pg_wal of 64 TiB at 16 MiB. */
export const WAL_SEGMENT_FILES_MAX = 4 * 1024 * 1024

const SEGMENT_NAME_RE = /^[0-9A-F]{24}$/
/** The unfinished last segment of a timeline that a promotion left behind (never read, but mentioned). */
const PARTIAL_SEGMENT_NAME_RE = /^[0-9A-F]{24}\.partial$/
/** PostgreSQL's TimeLineID is a uint32; timeline 0 does not exist. */
const PG_TIMELINE_ID_MAX = 0xffff_ffff

export interface WalListOptions {
  /** Keep only this timeline's segments (see WalReadOptions.timeline). */
  timeline?: number | null
}

/** Lists the segment files named by `paths` (directories or files), sorted, one per segment. */
export async function listWalSegmentFiles(paths: readonly string[], opts: WalListOptions = {}): Promise<Array<{ path: string; name: string }>> {
  if (paths.length === 0) {
    throw new UsageError('WAL_NO_PATHS', 'no WAL files or directory given', {
      hint: 'Pass a pg_wal directory or one or more WAL segment files.',
    })
  }
  const timeline = opts.timeline ?? null
  if (timeline !== null && (!Number.isSafeInteger(timeline) || timeline < 1 || timeline > PG_TIMELINE_ID_MAX)) {
    throw new UsageError('WAL_BAD_TIMELINE', `timeline ${timeline} is not a PostgreSQL timeline (1 to ${PG_TIMELINE_ID_MAX})`, {
      hint: 'Give the timeline as the first 8 hex digits of the segment names show it, in decimal (00000002... is 2).',
    })
  }
  /** `*.partial` files seen in directories, and the timelines of segments skipped for `timeline`. */
  const partials: string[] = []
  const otherTimelines = new Set<number>()
  const byName = new Map<string, string>()
  const add = (name: string, path: string): void => {
    const seen = byName.get(name)
    if (seen !== undefined && seen !== path) {
      throw new UsageError('WAL_DUPLICATE_SEGMENT', `segment ${name} is given twice (${seen} and ${path})`, {
        hint: 'Pass each WAL segment once.',
      })
    }
    byName.set(name, path)
    if (byName.size > WAL_SEGMENT_FILES_MAX) {
      throw new UsageError('WAL_TOO_MANY_FILES', `more than ${WAL_SEGMENT_FILES_MAX} WAL segment files`, {
        hint: 'Pass a narrower set of files.',
      })
    }
  }
  for (const p of paths) {
    let st
    try {
      st = await stat(p)
    } catch (e) {
      if (isNotFoundFsError(e)) {
        throw new NotFoundError('WAL_PATH_NOT_FOUND', `${p} does not exist`, {
          hint: 'Pass a pg_wal directory or WAL segment files that exist.',
        })
      }
      throw inputPathFailed('inspecting', p, e)
    }
    if (st.isDirectory()) {
      for (const ent of await readdir(p, { withFileTypes: true })) {
        if (PARTIAL_SEGMENT_NAME_RE.test(ent.name)) partials.push(ent.name)
        if (!SEGMENT_NAME_RE.test(ent.name)) continue
        if (timeline !== null && walFileTimeline(ent.name) !== timeline) {
          otherTimelines.add(walFileTimeline(ent.name))
          continue
        }
        const path = join(p, ent.name)
        if (ent.isFile()) add(ent.name, path)
        // A pg_wal whose segments link to another disk: follow the link, as pg_waldump does, to a regular
        // file; a link to nothing or to something else is named rather than skipped (skipping it would end
        // the output early at a "missing" segment, or find no segments at all).
        else if (ent.isSymbolicLink()) {
          await requireLinkToFile(path)
          add(ent.name, path)
        }
      }
    } else {
      const name = basename(p)
      if (!SEGMENT_NAME_RE.test(name)) {
        throw new UsageError('WAL_BAD_FILE_NAME', `${p} is not named like a WAL segment (24 hex digits, e.g. 000000010000000000000001)`, {
          hint: 'WAL segment names give their timeline and position; rename copied segments back to their original names.',
        })
      }
      if (timeline !== null && walFileTimeline(name) !== timeline) {
        throw new UsageError('WAL_WRONG_TIMELINE', `${p} is a segment of timeline ${walFileTimeline(name)}, not of timeline ${timeline} as asked`, {
          hint: `Pass the segments of timeline ${timeline}, or ask for timeline ${walFileTimeline(name)}.`,
        })
      }
      // Opening a FIFO for reading would block forever (storage/input-file.ts).
      requireRegularFile(p, st, 'WAL segment')
      add(name, p)
    }
  }
  if (byName.size === 0) {
    const where = paths.join(', ')
    if (otherTimelines.size > 0) {
      const found = [...otherTimelines].sort((a, b) => a - b)
      throw new NotFoundError('WAL_NO_SEGMENTS', `no WAL segment files of timeline ${timeline} in ${where} (timelines found: ${found.join(', ')})`, {
        hint: `Ask for one of the timelines found, e.g. the newest, ${found[found.length - 1]}.`,
        details: { timeline, timelines: found },
      })
    }
    if (partials.length > 0) {
      partials.sort()
      throw new NotFoundError('WAL_NO_SEGMENTS', `no WAL segment files in ${where}, only ${partials.length} skipped *.partial file(s): ${partials.join(', ')}`, {
        hint:
          'A .partial file is the unfinished last segment of a timeline, left by a promotion or by pg_receivewal; to read it, ' +
          `copy it under its name without ".partial" (e.g. ${partials[0]!.slice(0, 24)}) and pass the copy.`,
        details: { partial: partials },
      })
    }
    throw new NotFoundError('WAL_NO_SEGMENTS', `no WAL segment files in ${where}`, {
      hint: 'Pass a pg_wal directory (it holds files such as 000000010000000000000001).',
    })
  }
  return [...byName.keys()].sort().map((name) => ({ name, path: byName.get(name)! }))
}

/** Checks that the symbolic link `path`, named like a segment, leads to a regular file. */
async function requireLinkToFile(path: string): Promise<void> {
  let st
  try {
    st = await stat(path)
  } catch (e) {
    if (isNotFoundFsError(e)) {
      throw new NotFoundError('WAL_SEGMENT_LINK_BROKEN', `WAL segment ${path} is a symbolic link to nothing (its target does not exist)`, {
        hint: 'Restore the file the link points to, or remove the link and copy the segment in its place.',
        details: { path },
      })
    }
    throw inputPathFailed('following the link', path, e)
  }
  requireRegularFile(path, st, 'the target of WAL segment link')
}
