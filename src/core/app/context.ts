/**
 * The composition root: turns the effective configuration into the options of the repository, redo
 * workers and PostgreSQL tools, and scopes a repository to one use case (opened, used, closed).
 */
import type { PageserverConfig } from '../config/index.js'
import { findPostgres, type PgInstallation } from '../postgres/install.js'
import { SlabPool } from '../layer/value-slabs.js'
import { Repository } from '../repository/repository.js'
import type { TenantOptions } from '../repository/tenant.js'
import type { WalRedoLogger } from '../walredo/manager.js'
import { mkdir } from 'node:fs/promises'
import { WorkdirLock } from '../storage/workdir-lock.js'
import { sharedPageCache } from '../datadir/page-cache.js'
import { sharedValueCache } from '../layer/value-cache.js'

export interface AppContext {
  readonly config: PageserverConfig
  /** The process environment (PGBIN and friends); core never reads process.env itself. */
  readonly env: NodeJS.ProcessEnv
  /** Optional log sink (structured). */
  readonly log?: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void
}

/** The slab pool of a context: every repository and timeline the process opens with it shares one budget. */
const slabPools = new WeakMap<AppContext, SlabPool>()

function slabPoolOf(ctx: AppContext): SlabPool {
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
 * Opens the workdir's repository for the duration of `fn`, and always closes it. Mutating use cases pass
 * `lockFor` and hold the workdir lock (a running `serve` or another mutation makes them fail, naming the
 * holder); readers open read-only and never touch files another process may own.
 */
export async function withRepository<T>(ctx: AppContext, fn: (repo: Repository) => Promise<T>, access: RepositoryAccess = {}): Promise<T> {
  const readOnly = access.lockFor === undefined
  let lock: WorkdirLock | null = null
  if (!readOnly) {
    await mkdir(ctx.config.workdir, { recursive: true })
    lock = WorkdirLock.acquire(ctx.config.workdir, access.lockFor!)
  }
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
