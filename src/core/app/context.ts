/**
 * The composition root: turns the effective configuration into the options of the repository, redo
 * workers and PostgreSQL tools, and scopes a repository to one use case (opened, used, closed).
 */
import type { PageserverConfig } from '../config/index.js'
import { findPostgres, type PgInstallation } from '../postgres/install.js'
import { Repository } from '../repository/repository.js'
import type { TenantOptions } from '../repository/tenant.js'
import type { WalRedoLogger } from '../walredo/manager.js'

export interface AppContext {
  readonly config: PageserverConfig
  /** The process environment (PGBIN and friends); core never reads process.env itself. */
  readonly env: NodeJS.ProcessEnv
  /** Optional log sink (structured). */
  readonly log?: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void
}

export function tenantOptions(ctx: AppContext): TenantOptions {
  const c = ctx.config
  const logger: WalRedoLogger | undefined = ctx.log ? (level, message, fields) => ctx.log!(level, message, fields) : undefined
  return {
    noSync: c.noSync,
    waitLsnTimeoutMs: c.waitLsnTimeoutMs,
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

/** Opens the workdir's repository for the duration of `fn`, and always closes it. */
export async function withRepository<T>(ctx: AppContext, fn: (repo: Repository) => Promise<T>): Promise<T> {
  const repo = await Repository.open(ctx.config.workdir, tenantOptions(ctx))
  try {
    return await fn(repo)
  } finally {
    await repo.close()
  }
}
