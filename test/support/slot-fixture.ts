/**
 * Timelines as `slot list` sees them, written straight into a workdir's tenant (only their metadata: the
 * owner scan reads nothing else): one streaming through a slot of some cluster, one whose metadata is
 * damaged, one whose creation is under way (its temporary directory), and a deleted one's tombstone.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generateTimelineId, type TenantId, type TimelineId } from '../../src/core/model/ids.js'
import { writeMetadata } from '../../src/core/repository/metadata.js'
import { TENANTS_DIR } from '../../src/core/repository/repository.js'
import { METADATA_FILE } from '../../src/core/repository/timeline.js'
import { TEMP_DIR_PREFIX, TOMBSTONE_INFIX } from '../../src/core/storage/atomic-dir.js'
import { testTimelineMetadata } from './timeline-fixture.js'

function timelinesDir(workdir: string, tenantId: TenantId): string {
  return join(workdir, TENANTS_DIR, tenantId, 'timelines')
}

/** A timeline whose metadata says it streams through `slotName` on the cluster `systemId` (null: no WAL source). */
export async function timelineWithSlot(workdir: string, tenantId: TenantId, source: { slotName: string | null; systemId: string } | null, id = generateTimelineId()): Promise<TimelineId> {
  const dir = join(timelinesDir(workdir, tenantId), id)
  mkdirSync(dir, { recursive: true })
  const walSource = source === null ? null : { connString: 'host=127.0.0.1 port=1 user=postgres', slotName: source.slotName, systemId: source.systemId, pgTimeline: 1 }
  await writeMetadata(join(dir, METADATA_FILE), testTimelineMetadata({ walSource }), { noSync: true })
  return id
}

/** A timeline whose metadata cannot be read (its header is garbage). */
export function damagedTimeline(workdir: string, tenantId: TenantId, id = generateTimelineId()): TimelineId {
  const dir = join(timelinesDir(workdir, tenantId), id)
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, METADATA_FILE), 'not a metadata file')
  return id
}

/** The temporary directory of a timeline being created (`.tmp-<id>-<12 hex>`), with metadata naming `slotName` when given. */
export async function timelineBeingCreated(workdir: string, tenantId: TenantId, slotName: string | null, id = generateTimelineId()): Promise<TimelineId> {
  const dir = join(timelinesDir(workdir, tenantId), `${TEMP_DIR_PREFIX}${id}-0123456789ab`)
  mkdirSync(dir, { recursive: true })
  if (slotName !== null) {
    const walSource = { connString: 'host=127.0.0.1 port=1', slotName, systemId: '1', pgTimeline: 1 }
    await writeMetadata(join(dir, METADATA_FILE), testTimelineMetadata({ walSource }), { noSync: true })
  }
  return id
}

/** The tombstone of a deleted timeline (`.tmp-<id>-deleted-<8 hex>`): its metadata still names `slotName`, yet it owns nothing. */
export async function timelineTombstone(workdir: string, tenantId: TenantId, slotName: string, systemId: string, id = generateTimelineId()): Promise<TimelineId> {
  const dir = join(timelinesDir(workdir, tenantId), `${TEMP_DIR_PREFIX}${id}${TOMBSTONE_INFIX}0123abcd`)
  mkdirSync(dir, { recursive: true })
  const walSource = { connString: 'host=127.0.0.1 port=1', slotName, systemId, pgTimeline: 1 }
  await writeMetadata(join(dir, METADATA_FILE), testTimelineMetadata({ walSource }), { noSync: true })
  return id
}
