/**
 * The paths `local start` records in `<workdir>/local/state.json` (the local PostgreSQL's data directory, its
 * log and socket directory, the page server's log), so that the workdir can be moved or copied.
 *
 * Paths are stored absolute (scripts read the file), with the workdir they were written in; read in a workdir
 * that has moved (or been copied), the paths inside the old one are rebased onto where the workdir is now.
 * Followed as written, a moved workdir's `local start` made a new primary at the old path from an export and
 * lost commits the moved one had acknowledged, and a copy's `local stop` stopped the original's PostgreSQL (an
 * audit). Files of earlier releases name no workdir: it is what precedes `/local/pageserver.log` in the page
 * server's log path.
 *
 * A data directory outside the workdir (root, when the postgres user cannot reach it) belongs to the workdir
 * that made it: the state also records that workdir's identity (device and inode), and a state file read in
 * another directory (a copy, or a move to another file system) that points outside is refused, not followed.
 */
import { isAbsolute, join, resolve } from 'node:path'
import { ConflictError } from '../lib/errors.js'
import { workdirIdentity } from '../storage/workdir-lock.js'

const PATH_FIELDS = ['pgDataDir', 'pgLogFile', 'pgSocketDir', 'serveLogFile'] as const
type PathField = (typeof PATH_FIELDS)[number]
type WithPaths = Record<PathField, string> & { workdirId?: string; workdir?: string }

const SERVE_LOG_TAIL = '/local/pageserver.log'

/** `s` as stored: absolute paths, the workdir they were written in, and its identity. */
export function storedLocalPaths<T extends WithPaths>(workdir: string, s: T): T {
  const out: T = { ...s, workdir: resolve(workdir) }
  for (const f of PATH_FIELDS) if (typeof s[f] === 'string') out[f] = resolve(workdir, s[f])
  const id = workdirIdentity(workdir)
  if (id !== null) out.workdirId = id
  return out
}

/** `s` as read from `statePath` in `workdir`: every path absolute, where the workdir is now (see the header). */
export function resolvedLocalPaths<T extends WithPaths>(workdir: string, statePath: string, s: T): T {
  const root = resolve(workdir)
  const log: unknown = s.serveLogFile
  const oldRoot = typeof s.workdir === 'string' ? s.workdir : typeof log === 'string' && isAbsolute(log) && log.endsWith(SERVE_LOG_TAIL) ? log.slice(0, -SERVE_LOG_TAIL.length) : null
  const out: T = { ...s }
  const outside: string[] = []
  for (const f of PATH_FIELDS) {
    const p: unknown = s[f]
    if (typeof p !== 'string') continue // an older file without it: its readers check what they need
    if (!isAbsolute(p)) out[f] = join(root, p)
    else if (oldRoot !== null && oldRoot !== root && p.startsWith(oldRoot + '/')) out[f] = join(root, p.slice(oldRoot.length + 1))
    else if (!p.startsWith(root + '/')) outside.push(p)
  }
  const here = workdirIdentity(workdir)
  if (outside.length > 0 && s.workdirId !== undefined && here !== null && here !== s.workdirId) {
    throw new ConflictError('LOCAL_STATE_OF_ANOTHER_WORKDIR', `${statePath} was written in another workdir (this one is a copy of it, or was moved to another file system), and the local PostgreSQL it records, ${outside[0]}, belongs to that one`, {
      hint: 'Run local start and stop on the original workdir; or, if this one replaces it for good, move local/state.json aside here and run local start, which sets up a PostgreSQL of its own.',
      details: { statePath, outside },
    })
  }
  // Only for this check and the rebase.
  delete out.workdirId
  delete out.workdir
  return out
}
