/**
 * The composition root: turns the effective configuration into the options of the repository, redo
 * workers and PostgreSQL tools, and scopes a repository to one use case (opened, used, closed).
 */
import type { PageserverConfig } from '../config/index.js'
import { findPostgres, type PgInstallation } from '../postgres/install.js'
import { SlabPool } from '../layer/value-slabs.js'
import { Repository } from '../repository/repository.js'
import { WALREDO_QUEUED_MAX, type TenantOptions } from '../repository/tenant.js'
import { QUEUED_MAX as REDO_QUEUED_MAX, type WalRedoLogger } from '../walredo/manager.js'
import { RedoProcessBudget } from '../walredo/process-budget.js'
import { PAGE_SERVICE_DEFAULTS } from '../page-service/options.js'
import { stat } from 'node:fs/promises'
import { isNotFoundFsError, NotFoundError, UsageError } from '../lib/errors.js'
import { ioFailed } from '../storage/io-errors.js'
import { WorkdirLock } from '../storage/workdir-lock.js'
import { sharedPageCache } from '../datadir/page-cache.js'
import { sharedValueCache } from '../layer/value-cache.js'

export interface AppContext {
  readonly config: PageserverConfig
  /** The process environment (PGBIN and friends); core never reads process.env itself. */
  readonly env: NodeJS.ProcessEnv
  /** How a user runs this CLI in a shell (`pageserver`, or the path of bin/run.js), for commands named in hints; default `pageserver`. */
  readonly cliName?: string
  /** Optional log sink (structured). */
  readonly log?: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void
}

/** The slab pool of a context: every repository and timeline the process opens with it shares one budget. */
const slabPools = new WeakMap<AppContext, SlabPool>()
/** Likewise the cap on redo worker processes. */
const redoBudgets = new WeakMap<AppContext, RedoProcessBudget>()

export function slabPoolOf(ctx: AppContext): SlabPool {
  let pool = slabPools.get(ctx)
  if (pool === undefined) {
    pool = new SlabPool({ residentBytesMax: ctx.config.maxInMemoryLayersBytes })
    slabPools.set(ctx, pool)
  }
  return pool
}

/**
 * Sizes the process-wide read caches from `page_cache_size` (8 KiB pages): half for served pages (images
 * and pages rebuilt by redo, datadir/page-cache.ts), half for CRC-checked layer values and index blocks
 * (layer/value-cache.ts). The default, 8192 pages, gives each 32 MiB.
 */
export function applyCacheSizes(ctx: AppContext): void {
  const half = Math.floor((ctx.config.pageCacheSizePages * 8192) / 2)
  sharedPageCache.resize(half)
  sharedValueCache.resize(half)
}

/**
 * The cap on WAL redo worker processes (wal_redo_max_processes) shared by every tenant's pools in this
 * context: the served repository's, and the imports and bootstraps it runs.
 */
export function redoBudgetOf(ctx: AppContext): RedoProcessBudget {
  let budget = redoBudgets.get(ctx)
  if (budget === undefined) {
    budget = new RedoProcessBudget(ctx.config.walRedoMaxProcesses)
    redoBudgets.set(ctx, budget)
  }
  return budget
}

export function tenantOptions(ctx: AppContext, readOnly = false): TenantOptions {
  const c = ctx.config
  const logger: WalRedoLogger | undefined = ctx.log ? (level, message, fields) => ctx.log!(level, message, fields) : undefined
  return {
    noSync: c.noSync,
    readOnly,
    waitLsnTimeoutMs: c.waitLsnTimeoutMs,
    // One slab budget (max_in_memory_layers_bytes) for the in-memory layers of every timeline of the
    // context: the served repository's, and those of imports and bootstraps it runs.
    slabPool: slabPoolOf(ctx),
    walRedo: {
      command: c.walRedoCommand,
      poolSize: c.walRedoWorkers,
      requestTimeoutMs: c.walRedoTimeoutMs,
      idleTimeoutMs: c.walRedoIdleTimeoutMs,
      // As deep as the page service admits (every connection with its pipeline full, all on one tenant): a
      // GetPage it let in is never refused for want of queue room (a concurrency audit's 40 connections of
      // 32 in flight got WALREDO_OVERLOADED at 1024). The queue holds references only: the pages and records
      // of those requests are held by their connections either way, bounded by the page service's limits.
      maxQueued: Math.min(REDO_QUEUED_MAX, Math.max(WALREDO_QUEUED_MAX, c.pageServiceMaxConnections * PAGE_SERVICE_DEFAULTS.inFlightMax)),
      budget: redoBudgetOf(ctx),
      logger,
    },
  }
}

export function postgresInstallation(ctx: AppContext): PgInstallation {
  return findPostgres(ctx.config.pgDistribDir ?? undefined, ctx.env)
}

export interface RepositoryAccess {
  /** Take the workdir lock for this command (mutations); without it the repository opens read-only. */
  lockFor?: string
}

/**
 * Refuses a workdir that does not exist, before anything is created in it. Only `init`, `local start` and
 * `serve` make a workdir; for every other command a missing one is a typo in -D or PAGESERVER_WORKDIR, and
 * creating `<workdir>/tenants` on the way to "tenant not found" would hide that and leave litter behind.
 */
export async function requireWorkdir(workdir: string): Promise<void> {
  let st
  try {
    st = await stat(workdir)
  } catch (err) {
    if (!isNotFoundFsError(err)) throw ioFailed('inspecting', workdir, err)
    throw new NotFoundError('WORKDIR_NOT_FOUND', `the workdir ${workdir} does not exist`, {
      hint: 'Create it with `pageserver init`, or point --workdir (-D) or PAGESERVER_WORKDIR at an existing workdir.',
      details: { workdir },
    })
  }
  if (!st.isDirectory()) {
    throw new UsageError('WORKDIR_NOT_A_DIRECTORY', `the workdir ${workdir} is not a directory`, {
      hint: 'Point --workdir (-D) or PAGESERVER_WORKDIR at a workdir made by `pageserver init`.',
      details: { workdir },
    })
  }
}

/**
 * Opens the workdir's repository for the duration of `fn`, and always closes it. Mutating use cases pass
 * `lockFor` and hold the workdir lock (a running `serve` or another mutation makes them fail, naming the
 * holder); readers open read-only and never touch files another process may own. The workdir must exist
 * (requireWorkdir).
 */
export async function withRepository<T>(ctx: AppContext, fn: (repo: Repository) => Promise<T>, access: RepositoryAccess = {}): Promise<T> {
  const readOnly = access.lockFor === undefined
  await requireWorkdir(ctx.config.workdir)
  let lock: WorkdirLock | null = null
  if (!readOnly) lock = WorkdirLock.acquire(ctx.config.workdir, access.lockFor!)
  try {
    applyCacheSizes(ctx)
    const repo = await Repository.open(ctx.config.workdir, tenantOptions(ctx, readOnly))
    try {
      return await fn(repo)
    } finally {
      await repo.close()
    }
  } finally {
    lock?.release()
  }
}
