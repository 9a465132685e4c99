/**
 * Running stock `initdb` for a bootstrap: a fresh PostgreSQL 15 data directory in a temporary place that the
 * `postgres` OS user can write to when we are root (the page server's workdir may not be reachable by it).
 * The caller imports the directory and then calls `cleanup()`.
 *
 * The scratch directory is named with our pid (`pageserver-initdb-<pid>-*`): a process killed midway cannot
 * clean up (a data directory is ~40 MB), so each run first removes the ones whose process is gone.
 *
 * Security: the scratch directory is private (0700; as root, owned by `postgres`, which initdb runs as), so no
 * other local user can swap the data directory between initdb and its import, which runs as us and would read
 * whatever a planted symlink names (root-only files, into a backup a tenant token can fetch). Before the
 * import the data directory is checked to be a real directory owned by the user initdb ran as.
 */
import { chownSync, lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
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
  const parent = mkdtempSync(join(scratch, `${SCRATCH_PREFIX}${process.pid}-`))
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

/** Removes the scratch directories of runs whose process no longer exists (killed during initdb). */
export function removeAbandonedScratch(scratch: string): string[] {
  const removed: string[] = []
  let names: string[]
  try {
    names = readdirSync(scratch)
  } catch {
    return removed
  }
  for (const n of names) {
    if (!n.startsWith(SCRATCH_PREFIX)) continue
    const pid = /^(\d+)-/.exec(n.slice(SCRATCH_PREFIX.length))?.[1]
    if (pid === undefined || processAlive(Number(pid))) continue
    rmSync(join(scratch, n), { recursive: true, force: true })
    removed.push(n)
  }
  return removed
}
