/**
 * Repository: every tenant of one workdir (`<workdir>/tenants/<tenant_id>/`).
 *
 * Tenants load lazily on first use. Creating a tenant is atomic (a temporary directory renamed into place),
 * so two creates of one id give one success and one ConflictError, and a crash leaves no half-made tenant.
 * Deleting is atomic the same way (the directory becomes a `.tmp-*` tombstone, then is removed): a crash
 * leaves the tenant whole or a tombstone that `open` removes and listings skip, never a half-deleted
 * tenant. `close()` closes every loaded tenant (timelines, redo workers).
 */
import { dirname, join } from 'node:path'
import { mkdir, readdir } from 'node:fs/promises'
import { CorruptionError, isNotFoundFsError, NotFoundError, PageserverError } from '../lib/errors.js'
import { generateTenantId, parseTenantId, type TenantId } from '../model/ids.js'
import { createDirAtomically, deleteDirAtomically, pathExists, removeAbandonedTempDirs } from '../storage/atomic-dir.js'
import { ioFailed, notADirectory } from '../storage/io-errors.js'
import { writeFileDurably } from '../storage/durable-file.js'
import { Tenant, type TenantOptions } from './tenant.js'

export const TENANTS_DIR = 'tenants'
export const TENANT_CONFIG_FILE = 'config.toml'

/** An entry of the tenants directory named like a tenant that is not one (see `tenantIds`). */
export interface IgnoredTenantEntry {
  path: string
  reason: string
  /** For a directory without config.toml: the error a lookup of that tenant gives. */
  configMissing?: CorruptionError
  /** For a directory that cannot be read: why. */
  unreadable?: PageserverError
}

export class Repository {
  private readonly tenants = new Map<TenantId, Tenant>()

  private constructor(
    readonly workdir: string,
    private readonly opts: TenantOptions,
  ) {}

  get tenantsDir(): string {
    return join(this.workdir, TENANTS_DIR)
  }

  /**
   * Opens the repository of a workdir (creating `tenants/` if needed) and removes abandoned creations and
   * the tombstones of deletions a crash interrupted.
   */
  static async open(workdir: string, opts: TenantOptions): Promise<Repository> {
    const repo = new Repository(workdir, opts)
    if (!opts.readOnly) {
      try {
        // Private: tenant data is no one else's to read, nor to plant a directory in (whatever the umask).
        await mkdir(repo.tenantsDir, { recursive: true, mode: 0o700 })
      } catch (e) {
        // Recursive mkdir answers EEXIST when `tenants` is a file.
        if ((e as { code?: unknown }).code === 'EEXIST') throw notADirectory(`${repo.tenantsDir} is not a directory`, repo.tenantsDir, e)
        throw ioFailed('creating', repo.tenantsDir, e)
      }
      await removeAbandonedTempDirs(repo.tenantsDir)
    }
    return repo
  }

  /**
   * Tenant ids on disk. A directory is a tenant once it holds config.toml (creation writes it before the
   * directory gets its name); one named like a tenant without it was not made by us and is left out, and so
   * is a file named like one: each is added to `ignored` when given, with why (so that one stray entry does
   * not make every listing fail).
   */
  async tenantIds(ignored?: IgnoredTenantEntry[]): Promise<TenantId[]> {
    const out: TenantId[] = []
    let entries
    try {
      entries = await readdir(this.tenantsDir, { withFileTypes: true })
    } catch (e) {
      if (isNotFoundFsError(e)) return []
      throw ioFailed('listing', this.tenantsDir, e)
    }
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      let id: TenantId
      try {
        id = parseTenantId(entry.name)
      } catch {
        continue // not a tenant directory
      }
      const path = join(this.tenantsDir, entry.name)
      if (!entry.isDirectory()) {
        ignored?.push({ path, reason: 'it is named like a tenant but is not a directory' })
        continue
      }
      let configThere: boolean
      try {
        configThere = await pathExists(join(path, TENANT_CONFIG_FILE))
      } catch (e) {
        // Its directory cannot be read (a tenant created by another user, say): that tenant alone is out.
        if (!(e instanceof PageserverError)) throw e
        ignored?.push({ path, reason: `its ${TENANT_CONFIG_FILE} cannot be inspected (${e.message})`, unreadable: e })
        continue
      }
      if (configThere) out.push(id)
      else ignored?.push({ path, reason: `it is named like a tenant but has no ${TENANT_CONFIG_FILE}`, configMissing: tenantConfigMissing(id, path) })
    }
    return out
  }

  async createTenant(id: TenantId = generateTenantId()): Promise<Tenant> {
    const createdAt = new Date().toISOString()
    await createDirAtomically(
      this.tenantsDir,
      id,
      `tenant ${id}`,
      async (tmp) => {
        await mkdir(join(tmp, 'timelines'))
        await writeFileDurably(join(tmp, TENANT_CONFIG_FILE), Buffer.from(`# tenant ${id}\ncreated_at = ${JSON.stringify(createdAt)}\n`), { noSync: this.opts.noSync })
      },
      { noSync: this.opts.noSync },
    )
    return this.tenant(id)
  }

  async tenant(id: TenantId): Promise<Tenant> {
    let t = this.tenants.get(id)
    if (t) return t
    const dir = join(this.tenantsDir, id)
    if (!(await pathExists(join(dir, TENANT_CONFIG_FILE)))) {
      if (await pathExists(dir)) throw tenantConfigMissing(id, dir)
      throw new NotFoundError('TENANT_NOT_FOUND', `tenant ${id} does not exist in ${this.workdir}`, {
        hint: 'List tenants with `pageserver tenant list`, or create one with `pageserver tenant create`; the workdir is --workdir or PAGESERVER_WORKDIR (default ./.neon).',
      })
    }
    t = new Tenant(id, dir, this.opts)
    this.tenants.set(id, t)
    return t
  }

  /**
   * Deletes a tenant and all its timelines (branches included): NotFoundError if it does not exist. Its
   * loaded timelines are closed first (an in-flight flush finishes, so nothing writes into the directory
   * once it is renamed), then the directory is deleted atomically.
   */
  async deleteTenant(id: TenantId): Promise<void> {
    const t = await this.tenant(id)
    await t.close()
    this.tenants.delete(id)
    await deleteDirAtomically(this.tenantsDir, id, `tenant ${id}`, { noSync: this.opts.noSync })
  }

  loadedTenants(): Tenant[] {
    return [...this.tenants.values()]
  }

  async close(): Promise<void> {
    for (const t of this.tenants.values()) await t.close()
    this.tenants.clear()
  }
}

/**
 * A directory named like tenant `id` without its config.toml: a tenant whose config was lost, or a directory
 * someone else made. Not "not found" (creating the id then says it exists), not silently skipped.
 */
export function tenantConfigMissing(id: TenantId, dir: string): CorruptionError {
  return new CorruptionError('TENANT_CONFIG_MISSING', `the directory of tenant ${id} (${dir}) has no ${TENANT_CONFIG_FILE}, which makes it a tenant`, {
    hint:
      `If it is one of ours (it holds timelines/), restore ${TENANT_CONFIG_FILE} from a backup of the workdir (a file with one line, ` +
      `created_at = "<ISO time>", will do); otherwise move the directory out of ${dirname(dir)}.`,
    details: { path: join(dir, TENANT_CONFIG_FILE) },
  })
}
