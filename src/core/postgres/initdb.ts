/**
 * Running stock `initdb` for a bootstrap: a fresh PostgreSQL 15 data directory in a temporary place that the
 * `postgres` OS user can write to when we are root (the page server's workdir may not be reachable by it).
 * The caller imports the directory and then calls `cleanup()`.
 *
 * The scratch directory is named with our pid and pid namespace (`pageserver-initdb-<pid>-n<ns>-*`): a process
 * killed midway cannot clean up (a data directory is ~40 MB), so each run, and each serve at its start, first
 * removes the ones whose process is gone (removeAbandonedScratch).
 *
 * Security: the scratch directory is private (0700; as root, owned by `postgres`, which initdb runs as), so no
 * other local user can swap the data directory between initdb and its import, which runs as us and would read
 * whatever a planted symlink names (root-only files, into a backup a tenant token can fetch). Before the
 * import the data directory is checked to be a real directory owned by the user initdb ran as.
 */
import { chownSync, lstatSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runPgTool, type PgInstallation } from './install.js'
import { processAlive } from '../storage/process-identity.js'
import { lookupOsUser } from '../storage/os-user.js'
import { UnavailableError } from '../lib/errors.js'
import { isRoot } from './install.js'

const SCRATCH_PREFIX = 'pageserver-initdb-'

export interface InitdbOptions {
  dataChecksums: boolean
  /** The superuser role (default postgres). */
  superuser?: string
  /** Directory for the temporary data directory (default: the OS temp dir). */
  scratchDir?: string
  /** Stops initdb and removes the scratch directory (InterruptedError). */
  signal?: AbortSignal
}

export interface InitdbResult {
  dataDir: string
  cleanup(): void
}

export async function runInitdb(inst: PgInstallation, opts: InitdbOptions): Promise<InitdbResult> {
  const scratch = opts.scratchDir ?? tmpdir()
  removeAbandonedScratch(scratch)
  // mkdtemp: a fresh name, mode 0700. initdb runs as `postgres` when we are root: the directory is given to
  // that user alone (see the header), never opened to everyone.
  const parent = mkdtempSync(join(scratch, `${SCRATCH_PREFIX}${process.pid}-${namespaceTag()}`))
  const cleanup = () => rmSync(parent, { recursive: true, force: true })
  const owner = isRoot() ? lookupOsUser('postgres') : { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1 }
  if (owner === null) {
    cleanup()
    throw new UnavailableError('POSTGRES_USER_MISSING', 'there is no `postgres` OS user to run initdb as (PostgreSQL refuses to run as root)', {
      hint: 'Install PostgreSQL 15 from the distribution packages (they create the user), or run pageserver as an ordinary user.',
    })
  }
  if (isRoot()) chownSync(parent, owner.uid, owner.gid)
  const dataDir = join(parent, 'pgdata')
  const args = ['-D', dataDir, '-U', opts.superuser ?? 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions', '--auth=trust']
  if (opts.dataChecksums) args.push('--data-checksums')
  try {
    await runPgTool(inst, 'initdb', args, { asPostgresUser: true, timeoutMs: 180_000, signal: opts.signal })
    const st = lstatSync(dataDir)
    if (!st.isDirectory() || (owner.uid >= 0 && st.uid !== owner.uid)) {
      throw new UnavailableError('INITDB_OUTPUT_REPLACED', `the data directory initdb wrote (${dataDir}) was replaced before its import`, {
        hint: 'Something else wrote to the scratch directory while initdb ran; check who can write to the temporary directory, and run the command again.',
      })
    }
  } catch (e) {
    cleanup()
    throw e
  }
  return { dataDir, cleanup }
}

/**
 * Removes the scratch directories of runs whose process no longer exists (killed during initdb). Named
 * `pageserver-initdb-<pid>-n<pid namespace>-*`: a pid means something only in its namespace, so a directory
 * of another namespace (a container sharing /tmp) is left alone; one without the tag (older runs) only once it
 * is an hour old. Only directories owned by us (or by postgres, which owns them when we are root) are
 * touched, and one that cannot be removed (another user's) is skipped: this clean-up never fails its caller.
 */
export function removeAbandonedScratch(scratch: string): string[] {
  const removed: string[] = []
  let names: string[]
  try {
    names = readdirSync(scratch)
  } catch {
    return removed
  }
  const ours = ownerUids()
  const ns = namespaceTag()
  for (const n of names) {
    if (!n.startsWith(SCRATCH_PREFIX)) continue
    const m = /^(\d+)-(n\d+-)?/.exec(n.slice(SCRATCH_PREFIX.length))
    if (m === null) continue
    const path = join(scratch, n)
    try {
      const st = lstatSync(path)
      if (!st.isDirectory() || !ours.includes(st.uid)) continue
      if (m[2] !== undefined ? m[2] !== ns : Date.now() - st.mtimeMs < UNTAGGED_SCRATCH_AGE_MS) continue
      if (processAlive(Number(m[1]))) continue
      rmSync(path, { recursive: true, force: true })
      removed.push(n)
    } catch {
      // Gone meanwhile, or not ours to remove.
    }
  }
  return removed
}

/** A scratch directory without a namespace tag is removed only after this long (its pid may be another namespace's). */
const UNTAGGED_SCRATCH_AGE_MS = 60 * 60 * 1000

/** "n<inode>-" of this process's pid namespace (Linux), or "n0-" where it cannot be read. */
function namespaceTag(): string {
  try {
    return `n${/\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? 0}-`
  } catch {
    return 'n0-'
  }
}

/** The owners a scratch directory of ours can have: us, and postgres when we are root (it is chowned). */
function ownerUids(): number[] {
  const me = process.getuid?.() ?? -1
  if (!isRoot()) return [me]
  const pg = lookupOsUser('postgres')
  return pg === null ? [me] : [me, pg.uid]
}
