/**
 * PostgreSQL commands the CLI prints for a user to paste (`local start`'s next steps, `timeline export`'s
 * start line): they must run as printed. Debian keeps PostgreSQL's server tools off PATH, so pg_ctl is named
 * by its full path; as root it runs as the postgres user, who owns the data directories we write.
 */
import { join } from 'node:path'
import { postgresInstallation, type AppContext } from '../core/app/context.js'
import { shellWord } from '../core/lib/shell-word.js'

export { shellWord }

/** pg_ctl as pasted into a shell: full path, behind `runuser -u postgres --` when we are root. */
export function pgCtlCommand(ctx: AppContext): string {
  let pgCtl = 'pg_ctl'
  try {
    pgCtl = shellWord(join(postgresInstallation(ctx).binDir, 'pg_ctl'))
  } catch {
    // no local PostgreSQL 15 found: name the tool only
  }
  return `${process.getuid?.() === 0 ? 'runuser -u postgres -- ' : ''}${pgCtl}`
}
