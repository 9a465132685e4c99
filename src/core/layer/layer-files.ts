/**
 * The layer files of a timeline directory, listed by name and size only (no file is opened): what
 * `pageserver layer list` shows. The timeline directory is `<workdir>/tenants/<tenant>/timelines/<timeline>`.
 */
import { join } from 'node:path'
import { NotFoundError, isNotFoundFsError, PageserverError } from '../lib/errors.js'
import type { Key } from '../model/key.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import type { Lsn } from '../pg/lsn.js'
import { pathExists } from '../storage/atomic-dir.js'
import { listFiles } from '../storage/directory.js'
import { parseLayerFileName, type LayerKind } from './layer-name.js'

export interface LayerFileInfo {
  readonly name: string
  readonly kind: LayerKind
  readonly keyStart: Key
  readonly keyEnd: Key
  readonly lsnStart: Lsn
  /** Exclusive; an image layer at L ends at L + 1. */
  readonly lsnEnd: Lsn
  readonly sizeBytes: number
  readonly generation: number | null
}

export interface TimelineLayerFiles {
  readonly dir: string
  /** Ordered by LSN start, then key start. */
  readonly layers: LayerFileInfo[]
  /** Files that are not layers (metadata, temp and ephemeral files, strays). */
  readonly otherFiles: string[]
}

export function timelineDirPath(workdir: string, tenantId: TenantId, timelineId: TimelineId): string {
  return join(workdir, 'tenants', tenantId, 'timelines', timelineId)
}

/** The layer files of `<workdir>/tenants/<tenant>/timelines/<timeline>`; names the tenant when it is the one missing. */
export async function listLayerFiles(workdir: string, tenantId: TenantId, timelineId: TimelineId): Promise<TimelineLayerFiles> {
  const dir = timelineDirPath(workdir, tenantId, timelineId)
  let files
  try {
    files = await listFiles(dir)
  } catch (err) {
    if ((err instanceof PageserverError && err.kind === 'not_found') || isNotFoundFsError(err)) {
      throw (await pathExists(join(workdir, 'tenants', tenantId))) ? timelineNotFound(dir, err) : tenantNotFound(workdir, tenantId, err)
    }
    throw err
  }
  const layers: LayerFileInfo[] = []
  const otherFiles: string[] = []
  for (const f of files) {
    const parsed = parseLayerFileName(f.name)
    if (parsed === null) {
      otherFiles.push(f.name)
      continue
    }
    const d = parsed.desc
    layers.push({
      name: f.name,
      kind: d.kind,
      keyStart: d.keyRange.start,
      keyEnd: d.keyRange.end,
      lsnStart: d.lsnRange.start,
      lsnEnd: d.lsnRange.end,
      sizeBytes: f.sizeBytes,
      generation: parsed.generation,
    })
  }
  layers.sort((a, b) => (a.lsnStart !== b.lsnStart ? (a.lsnStart < b.lsnStart ? -1 : 1) : a.keyStart < b.keyStart ? -1 : a.keyStart > b.keyStart ? 1 : 0))
  return { dir, layers, otherFiles }
}

function tenantNotFound(workdir: string, tenantId: TenantId, cause: unknown): NotFoundError {
  return new NotFoundError('TENANT_NOT_FOUND', `tenant ${tenantId} does not exist in ${workdir}`, {
    hint: 'Check --tenant and -D/--workdir; `pageserver tenant list` shows the tenants.',
    cause,
    details: { workdir },
  })
}

function timelineNotFound(dir: string, cause: unknown): NotFoundError {
  return new NotFoundError('TIMELINE_NOT_FOUND', `timeline directory ${dir} does not exist`, {
    hint: 'Check --tenant, --timeline and -D/--workdir; `pageserver timeline list` shows the timelines of a tenant.',
    cause,
    details: { dir },
  })
}
