import { openSync, closeSync, readFileSync, existsSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command.js'
import { startProgress } from '../../cli/render.js'
import { localPrepare, writeLocalState, type LocalState } from '../../core/app/local.js'
import { postgresInstallation } from '../../core/app/context.js'
import { TimeoutError } from '../../core/lib/errors.js'

/** How long to wait for the background server to listen. */
const SERVE_START_TIMEOUT_MS = 60_000

export default class LocalStart extends BaseCommand<typeof LocalStart> {
  static override summary = 'Start everything locally: a PostgreSQL 15 primary whose WAL a page server stores.'
  static override description =
    'In one command for a newcomer: creates the workdir if needed, bootstraps a tenant and a timeline with the ' +
    'installed stock PostgreSQL 15 (initdb), exports it, starts that PostgreSQL as the primary of the timeline ' +
    '(replication slot and settings prepared), and runs `pageserver serve` in the background streaming its WAL. ' +
    'Prints how to connect with psql and how to branch. `pageserver local stop` stops what it started; a later ' +
    'start resumes the same cluster.'
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --pg-port 55433']
  static override flags = {
    'pg-port': Flags.integer({ summary: 'Port of the local PostgreSQL (first start only).', min: 1, max: 65535 }),
  }

  async run(): Promise<LocalState & { psql: string }> {
    const ctx = await this.appContext()
    const progress = await startProgress('starting', this.jsonEnabled())
    let state: LocalState
    try {
      state = await localPrepare(ctx, { pgPort: this.flags['pg-port'], onProgress: (m) => progress.update(m) })
      progress.update('starting the page server')
      const log = openSync(state.serveLogFile, 'a')
      const bin = join(fileURLToPath(new URL('../../..', import.meta.url)), 'bin', 'run.js')
      const args = [bin, 'serve', '--workdir', ctx.config.workdir, ...(this.flags.config ?? []).flatMap((c) => ['-c', c])]
      const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', log, log], env: { ...process.env, PAGESERVER_WORKDIR: ctx.config.workdir } })
      child.unref()
      closeSync(log)
      const lockPath = join(ctx.config.workdir, 'pageserver.lock')
      const deadline = Date.now() + SERVE_START_TIMEOUT_MS
      let addrs: { pgAddr?: string; httpAddr?: string; pid?: number } = {}
      while (Date.now() < deadline) {
        if (existsSync(lockPath)) {
          addrs = JSON.parse(readFileSync(lockPath, 'utf8')) as typeof addrs
          if (addrs.pid === child.pid && addrs.httpAddr) break
        }
        if (child.exitCode !== null) break
        await new Promise((r) => setTimeout(r, 100))
      }
      if (addrs.pid !== child.pid || !addrs.httpAddr) {
        throw new TimeoutError('SERVE_DID_NOT_START', `the page server did not start; see ${state.serveLogFile}`, {
          hint: 'Another process may hold the workdir, or listen_pg_addr / listen_http_addr is taken (-c listen_pg_addr=127.0.0.1:<port>).',
        })
      }
      state = { ...state, servePid: child.pid!, pgAddr: addrs.pgAddr ?? null, httpAddr: addrs.httpAddr }
      writeLocalState(ctx, state)
    } finally {
      progress.stop()
    }
    const psql = `psql -h 127.0.0.1 -p ${state.pgPort} -U postgres postgres`
    const w = ctx.config.workdir
    // Debian keeps postgres off PATH; root must run it as the postgres user (the export belongs to it).
    const postgresBin = join(postgresInstallation(ctx).binDir, 'postgres')
    const postgresCmd = process.getuid?.() === 0 ? `runuser -u postgres -- ${postgresBin}` : postgresBin
    this.log(
      [
        `PostgreSQL 15 runs on port ${state.pgPort}; the page server stores its WAL (page service ${state.pgAddr}, API ${state.httpAddr}).`,
        `  tenant   ${state.tenantId}`,
        `  timeline ${state.timelineId}`,
        '',
        `Connect:            ${psql}`,
        `Branch (now):       pageserver timeline branch --workdir ${w} --tenant ${state.tenantId} --ancestor ${state.timelineId}`,
        `Start on a branch:  pageserver timeline export --workdir ${w} --tenant ${state.tenantId} --timeline <branch id> -D /tmp/branch && ${postgresCmd} -D /tmp/branch -p 55440`,
        `Read a page:        pageserver getpage --workdir ${w} --tenant ${state.tenantId} --timeline ${state.timelineId} --rel 1663/5/1259 --blk 0`,
        `Stop:               pageserver local stop --workdir ${w}`,
        `Logs:               ${state.serveLogFile}, ${state.pgLogFile}`,
      ].join('\n'),
    )
    return { ...state, psql }
  }
}
