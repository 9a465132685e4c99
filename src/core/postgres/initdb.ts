/**
 * Running stock `initdb` for a bootstrap: a fresh PostgreSQL 15 data directory in a temporary place that the
 * `postgres` OS user can write to when we are root (the page server's workdir may not be reachable by it).
 * The caller imports the directory and then calls `cleanup()`.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runPgTool, type PgInstallation } from './install.js'

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
  const parent = mkdtempSync(join(opts.scratchDir ?? tmpdir(), 'pageserver-initdb-'))
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
