/**
 * Throwaway stock PostgreSQL 15 clusters for integration tests.
 *
 * Each cluster lives in its own temp directory, listens on a free loopback port and on a unix socket inside
 * that directory, and is always stopped: by `destroy()` in the test's teardown, and as a last resort by an
 * exit hook that kills every postmaster this process started (by pid, never by name).
 *
 * When the tests run as root, server binaries run as the `postgres` user and the temp directory is made
 * writable for it. Admin SQL goes over the unix socket (local trust); product code connects over TCP with
 * whatever auth the test asked for (trust, password, md5, scram-sha-256).
 *
 * Workload helpers run SQL scripts and pgbench and return the WAL insert LSN before and after each step,
 * so a test can say "the page at the LSN after step 3".
 */
import { mkdtempSync, chmodSync, rmSync, readFileSync, appendFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:net'
import { execFileSync } from 'node:child_process'
import { findPostgres, isRoot, runPgTool, type PgInstallation, type RunResult } from '../../src/core/postgres/install.js'
import { parseLsn, type Lsn } from '../../src/core/pg/lsn.js'

export type AuthMethod = 'trust' | 'password' | 'md5' | 'scram-sha-256'

export interface ClusterOptions {
  /** initdb --data-checksums */
  checksums?: boolean
  /** initdb --wal-segsize (MiB, a power of two from 1 to 1024); default 16. */
  walSegmentSizeMb?: number
  /** postgresql.conf wal_compression */
  walCompression?: 'off' | 'pglz' | 'lz4' | 'zstd'
  /** postgresql.conf wal_consistency_checking, e.g. 'all' */
  walConsistencyChecking?: string
  /** Auth for TCP connections (normal and replication). Default trust. */
  auth?: AuthMethod
  /** Password of the `postgres` role (required unless auth is trust). */
  password?: string
  /** Extra postgresql.conf settings. */
  settings?: Record<string, string | number | boolean>
  /** max_prepared_transactions (two-phase commit); default 0. */
  maxPreparedTransactions?: number
  /** Keep autovacuum on (default off, so WAL is deterministic for tests). */
  autovacuum?: boolean
  /** Use a fixed directory name prefix (for debugging). */
  name?: string
}

export interface StepLsns {
  name: string
  lsnBefore: Lsn
  lsnAfter: Lsn
}

export type WorkloadStep = { name: string; sql: string; db?: string } | { name: string; pgbench: string[]; db?: string }

const live = new Set<PgCluster>()
let exitHookInstalled = false

function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const c of live) c.killNow()
  })
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

function confValue(v: string | number | boolean): string {
  if (typeof v === 'number') return String(v)
  if (typeof v === 'boolean') return v ? 'on' : 'off'
  return `'${v.replaceAll("'", "''")}'`
}

export class PgCluster {
  readonly host = '127.0.0.1'
  private stopped = true
  private destroyed = false

  private constructor(
    readonly inst: PgInstallation,
    readonly dir: string,
    private portNow: number,
    readonly options: ClusterOptions,
    /** A data directory the caller owns (startOnDataDir); null: `<dir>/data`, made by initdb. */
    private readonly externalDataDir: string | null = null,
  ) {}

  /** The loopback port it listens on (chosen free; another one if that was taken before the server bound it). */
  get port(): number {
    return this.portNow
  }

  get dataDir(): string {
    return this.externalDataDir ?? join(this.dir, 'data')
  }

  get socketDir(): string {
    return this.dir
  }

  get walDir(): string {
    return join(this.dataDir, 'pg_wal')
  }

  get logFile(): string {
    return join(this.dir, 'postgres.log')
  }

  /** initdb + configure + start. */
  static async start(options: ClusterOptions = {}): Promise<PgCluster> {
    installExitHook()
    const inst = findPostgres(undefined, process.env)
    const dir = mkdtempSync(join(tmpdir(), `ps-pg-${options.name ?? 'test'}-`))
    chmodSync(dir, 0o777)
    const port = await freePort()
    const cluster = new PgCluster(inst, dir, port, options)
    live.add(cluster)
    try {
      await cluster.initdb()
      await cluster.startServer()
    } catch (e) {
      await cluster.destroy()
      throw e
    }
    return cluster
  }

  /**
   * Starts stock PostgreSQL on an existing data directory (e.g. a `timeline export`), on a free loopback
   * port with its socket and log in a temp directory of its own, with the same always-stop guarantees.
   * Port, listen address and socket directory are passed on the command line, so the data directory's
   * own configuration is not edited. `destroy()` stops the server and removes the temp directory; the data
   * directory stays (it is the caller's). When root, the directory must be owned by `postgres` and its
   * parents traversable by it.
   */
  static async startOnDataDir(dataDir: string, options: { name?: string; settings?: Record<string, string | number | boolean> } = {}): Promise<PgCluster> {
    installExitHook()
    const inst = findPostgres(undefined, process.env)
    const dir = mkdtempSync(join(tmpdir(), `ps-pg-${options.name ?? 'datadir'}-`))
    chmodSync(dir, 0o777)
    const port = await freePort()
    const cluster = new PgCluster(inst, dir, port, { settings: options.settings }, dataDir)
    live.add(cluster)
    try {
      await cluster.startServer()
    } catch (e) {
      await cluster.destroy()
      throw e
    }
    return cluster
  }

  /** postgres options for a data directory we did not configure: where to listen, plus the caller's settings. */
  private commandLineOptions(): string[] {
    if (this.externalDataDir === null) return []
    const settings: Record<string, string | number | boolean> = {
      port: this.port,
      listen_addresses: this.host,
      unix_socket_directories: this.socketDir,
      ...this.options.settings,
    }
    const opts = Object.entries(settings).map(([k, v]) => {
      const text = typeof v === 'boolean' ? (v ? 'on' : 'off') : String(v)
      // pg_ctl hands -o to a shell: accept only values that need no quoting.
      if (!/^[\w./:-]+$/.test(text)) throw new Error(`setting ${k}=${text} cannot be passed on the command line`)
      return `-c ${k}=${text}`
    })
    return ['-o', opts.join(' ')]
  }

  private async initdb(): Promise<void> {
    const auth = this.options.auth ?? 'trust'
    const args = ['-D', this.dataDir, '-U', 'postgres', '-E', 'UTF8', '--no-locale', '--no-sync', '--auth-local=trust', `--auth-host=${auth}`]
    if (this.options.checksums) args.push('--data-checksums')
    if (this.options.walSegmentSizeMb !== undefined) args.push(`--wal-segsize=${this.options.walSegmentSizeMb}`)
    if (auth !== 'trust') {
      if (!this.options.password) throw new Error(`auth ${auth} needs a password`)
      const pwfile = join(this.dir, 'pwfile')
      writeFileSync(pwfile, this.options.password + '\n', { mode: 0o644 })
      args.push(`--pwfile=${pwfile}`)
    }
    await runPgTool(this.inst, 'initdb', args, { asPostgresUser: true, timeoutMs: 120_000 })
    const settings: Record<string, string | number | boolean> = {
      port: this.port,
      listen_addresses: this.host,
      unix_socket_directories: this.socketDir,
      wal_level: 'replica',
      max_wal_senders: 10,
      max_replication_slots: 10,
      wal_keep_size: '4GB',
      max_wal_size: '4GB',
      checkpoint_timeout: '1h',
      fsync: false,
      synchronous_commit: 'on',
      autovacuum: this.options.autovacuum ?? false,
      max_prepared_transactions: this.options.maxPreparedTransactions ?? 0,
      wal_compression: this.options.walCompression ?? 'off',
      log_min_messages: 'warning',
      logging_collector: false,
      password_encryption: auth === 'md5' ? 'md5' : 'scram-sha-256',
      ...this.options.settings,
    }
    if (this.options.walConsistencyChecking) settings.wal_consistency_checking = this.options.walConsistencyChecking
    appendFileSync(
      join(this.dataDir, 'postgresql.conf'),
      '\n# test harness\n' + Object.entries(settings).map(([k, v]) => `${k} = ${confValue(v)}`).join('\n') + '\n',
    )
    // initdb --auth-host covers "host all" and "host replication" lines for 127.0.0.1 already.
  }

  /**
   * pg_ctl start. The port was free when chosen, but something else (a parallel test's server) can take it
   * before the postmaster binds it: then, at a first start, another free port is tried, up to 3 times. A
   * failure names the server log's last lines.
   */
  private async startServer(mayMovePort = true): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await runPgTool(this.inst, 'pg_ctl', ['-D', this.dataDir, '-l', this.logFile, ...this.commandLineOptions(), '-w', '-t', '60', 'start'], {
          asPostgresUser: true,
          timeoutMs: 90_000,
        })
        this.stopped = false
        return
      } catch (e) {
        const log = this.logTail()
        // Only at the first start: a restarted server keeps its port (streams and connection strings name it).
        if (mayMovePort && attempt < 3 && /could not bind|Address already in use|could not create any TCP\/IP sockets/.test(log)) {
          this.portNow = await freePort()
          // A later line wins; a data directory we did not configure gets the port on the command line.
          if (this.externalDataDir === null) appendFileSync(join(this.dataDir, 'postgresql.conf'), `port = ${this.portNow}\n`)
          continue
        }
        throw new Error(`${e instanceof Error ? e.message : String(e)}\n${log}`, { cause: e })
      }
    }
  }

  async stop(mode: 'fast' | 'immediate' | 'smart' = 'fast'): Promise<void> {
    if (this.stopped) return
    await runPgTool(this.inst, 'pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', '-t', '60', 'stop'], {
      asPostgresUser: true,
      timeoutMs: 90_000,
      okCodes: [1],
    })
    this.stopped = true
  }

  async restart(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.stop(mode)
    await this.startServer(false)
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return
    try {
      await this.stop('immediate')
    } catch {
      this.killNow()
    }
    this.destroyed = true
    live.delete(this)
    if (!process.env.PS_KEEP_TEST_DIRS) rmSync(this.dir, { recursive: true, force: true })
  }

  /** Synchronous last-resort kill of the postmaster by pid (exit hook). */
  killNow(): void {
    if (this.stopped) return
    try {
      const pid = Number(readFileSync(join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
      if (pid > 0) process.kill(pid, 'SIGQUIT')
    } catch {
      // already gone
    }
    this.stopped = true
  }

  /** A libpq connection string over TCP. */
  connString(opts: { user?: string; password?: string; db?: string; replication?: boolean } = {}): string {
    const parts = [`host=${this.host}`, `port=${this.port}`, `user=${opts.user ?? 'postgres'}`, `dbname=${opts.db ?? 'postgres'}`]
    const pw = opts.password ?? this.options.password
    if (pw) parts.push(`password=${pw}`)
    if (opts.replication) parts.push('replication=true')
    return parts.join(' ')
  }

  /** Same as connString, as a postgresql:// URL. */
  connUrl(opts: { user?: string; password?: string; db?: string } = {}): string {
    const pw = opts.password ?? this.options.password
    const cred = pw ? `${opts.user ?? 'postgres'}:${encodeURIComponent(pw)}` : (opts.user ?? 'postgres')
    return `postgresql://${cred}@${this.host}:${this.port}/${opts.db ?? 'postgres'}`
  }

  /** Runs SQL through psql over the unix socket; returns unaligned tuples-only output, trimmed. */
  async sql(query: string, opts: { db?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await runPgTool(
      this.inst,
      'psql',
      ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', this.socketDir, '-p', String(this.port), '-U', 'postgres', '-d', opts.db ?? 'postgres', '-f', '-'],
      { input: query, timeoutMs: opts.timeoutMs ?? 300_000 },
    )
    return r.stdout.trim()
  }

  /** The current WAL insert position: the end of the last record inserted. */
  async insertLsn(): Promise<Lsn> {
    return parseLsn(await this.sql('SELECT pg_current_wal_insert_lsn()'))
  }

  /** The current WAL flush position (what a walsender can send). */
  async flushLsn(): Promise<Lsn> {
    return parseLsn(await this.sql('SELECT pg_current_wal_flush_lsn()'))
  }

  async checkpoint(): Promise<void> {
    await this.sql('CHECKPOINT')
  }

  /** Forces a segment switch and returns the LSN of the switch. */
  async switchWal(): Promise<Lsn> {
    return parseLsn(await this.sql('SELECT pg_switch_wal()'))
  }

  async systemId(): Promise<string> {
    return this.sql('SELECT system_identifier FROM pg_control_system()')
  }

  async pgbench(args: string[], db = 'postgres', timeoutMs = 600_000): Promise<RunResult> {
    return runPgTool(this.inst, 'pgbench', ['-h', this.socketDir, '-p', String(this.port), '-U', 'postgres', ...args, db], { timeoutMs })
  }

  /** Runs named steps in order, returning the insert LSN before and after each. */
  async runWorkload(steps: WorkloadStep[]): Promise<StepLsns[]> {
    const out: StepLsns[] = []
    for (const step of steps) {
      const lsnBefore = await this.insertLsn()
      if ('sql' in step) await this.sql(step.sql, { db: step.db })
      else await this.pgbench(step.pgbench, step.db)
      out.push({ name: step.name, lsnBefore, lsnAfter: await this.insertLsn() })
    }
    return out
  }

  /** Runs pg_waldump (as the current user; it only reads files). */
  async waldump(args: string[], timeoutMs = 600_000): Promise<string> {
    const r = await runPgTool(this.inst, 'pg_waldump', args, { timeoutMs, okCodes: [1] })
    return r.stdout
  }

  /** Sorted WAL segment file names currently in pg_wal. */
  walSegments(): string[] {
    return readdirSync(this.walDir)
      .filter((f) => /^[0-9A-F]{24}$/.test(f))
      .sort()
  }

  logTail(lines = 40): string {
    if (!existsSync(this.logFile)) return ''
    return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n')
  }
}

/** Copies a directory tree readable for tests (WAL files are 0600 postgres-owned; root reads them anyway). */
export function copyTree(from: string, to: string): void {
  execFileSync('cp', ['-a', from, to])
}

export function pgAvailable(): boolean {
  try {
    findPostgres(undefined, process.env)
    return true
  } catch {
    return false
  }
}

export { isRoot }
