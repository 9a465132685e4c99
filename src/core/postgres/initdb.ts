/**
 * Running stock `initdb` for a bootstrap: a fresh PostgreSQL 15 data directory in a temporary place that the
 * `postgres` OS user can write to when we are root (the page server's workdir may not be reachable by it).
 * The caller imports the directory and then calls `cleanup()`.
 *
 * The scratch directory is named with our pid (`pageserver-initdb-<pid>-*`): a process killed midway cannot
 * clean up (a data directory is ~40 MB), so each run first removes the ones whose process is gone.
 */
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runPgTool, type PgInstallation } from './install.js'
import { processAlive } from '../storage/process-identity.js'

const SCRATCH_PREFIX = 'pageserver-initdb-'

export interface InitdbOptions {
  dataChecksums: boolean
  /** The superuser role (default postgres). */
  superuser?: string
  /** Directory for the temporary data directory (default: the OS temp dir). */
  scratchDir?: string
}

export interface InitdbResult {
  dataDir: string
  cleanup(): void
}

export async function runInitdb(inst: PgInstallation, opts: InitdbOptions): Promise<InitdbResult> {
  const scratch = opts.scratchDir ?? tmpdir()
  removeAbandonedScratch(scratch)
  const parent = mkdtempSync(join(scratch, `${SCRATCH_PREFIX}${process.pid}-`))
  // initdb runs as `postgres` when we are root: it must be able to create the data directory here.
  chmodSync(parent, 0o777)
  const dataDir = join(parent, 'pgdata')
  const cleanup = () => rmSync(parent, { recursive: true, force: true })
  const args = ['-D', dataDir, '-U', opts.superuser ?? 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions', '--auth=trust']
  if (opts.dataChecksums) args.push('--data-checksums')
  try {
    await runPgTool(inst, 'initdb', args, { asPostgresUser: true, timeoutMs: 180_000 })
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
