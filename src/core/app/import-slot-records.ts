/**
 * The records of the replication slots that imports create (see app/import-slots.ts for why and how they
 * are settled): `<workdir>/import-slots/<slot>.json`, written durably before the slot is created and
 * removed once the timeline names it or the slot is gone.
 */
import { mkdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { isNotFoundFsError, messageOf } from '../lib/errors.js'
import { fsyncDir, writeFileDurably } from '../storage/durable-file.js'
import { ioFailed } from '../storage/io-errors.js'
import { namesIn } from '../storage/directory.js'
import { validateSlotName } from '../walreceiver/replication-commands.js'
import type { AppContext } from './context.js'

export const IMPORT_SLOTS_DIR = 'import-slots'

export interface ImportSlotRecord {
  slotName: string
  /** The primary, without a password (the password comes from where streaming finds it). */
  connString: string
  /** The primary's system identifier, decimal. */
  systemId: string
  tenantId: string
  timelineId: string
  /** ISO time the import started. */
  startedAt: string
}

function recordPath(workdir: string, slotName: string): string {
  return join(workdir, IMPORT_SLOTS_DIR, `${slotName}.json`)
}

/** Slots of imports running in this process: never swept (a server imports while it sweeps). */
const inProgress = new Set<string>()

/** Records `r` durably before its slot is created (only a slot that does not exist yet: see app/import.ts). */
export async function recordImportSlot(ctx: AppContext, r: ImportSlotRecord): Promise<void> {
  validateSlotName(r.slotName)
  const dir = join(ctx.config.workdir, IMPORT_SLOTS_DIR)
  const path = recordPath(ctx.config.workdir, r.slotName)
  let existed = true
  try {
    await readFile(path)
  } catch (e) {
    if (!isNotFoundFsError(e)) throw ioFailed('reading', path, e)
    existed = false
  }
  try {
    await mkdir(dir, { recursive: true })
  } catch (e) {
    throw ioFailed('creating', dir, e)
  }
  inProgress.add(r.slotName)
  await writeFileDurably(path, Buffer.from(JSON.stringify(r, null, 2) + '\n'), { noSync: ctx.config.noSync })
  if (!existed) await fsyncDir(dir, { noSync: ctx.config.noSync })
}

/** Removes the record of `slotName` (its timeline names the slot now, or the slot is gone). */
export async function forgetImportSlot(ctx: AppContext, slotName: string): Promise<void> {
  inProgress.delete(slotName)
  const path = recordPath(ctx.config.workdir, slotName)
  try {
    await rm(path, { force: true })
  } catch (e) {
    throw ioFailed('removing', path, e)
  }
  await fsyncDir(join(ctx.config.workdir, IMPORT_SLOTS_DIR), { noSync: ctx.config.noSync }).catch(() => {})
}

/** The import stops tracking `slotName` in this process but keeps its record (a slot it could not drop). */
export function releaseImportSlot(slotName: string): void {
  inProgress.delete(slotName)
}

/**
 * The records in the workdir, except those of imports running in this process (unless `runningHere`). A
 * record that cannot be parsed is reported in `unreadable` and left alone.
 */
export async function readImportSlots(workdir: string, opts: { runningHere?: boolean } = {}): Promise<{ records: ImportSlotRecord[]; unreadable: Array<{ file: string; reason: string }> }> {
  const dir = join(workdir, IMPORT_SLOTS_DIR)
  const records: ImportSlotRecord[] = []
  const unreadable: Array<{ file: string; reason: string }> = []
  for (const name of (await namesIn(dir)) ?? []) {
    if (!name.endsWith('.json')) continue
    const file = join(dir, name)
    try {
      const r = parseRecord(JSON.parse(await readFile(file, 'utf8')))
      if (`${r.slotName}.json` !== name) throw new Error(`it names slot ${r.slotName}`)
      if (opts.runningHere === true || !inProgress.has(r.slotName)) records.push(r)
    } catch (e) {
      unreadable.push({ file, reason: messageOf(e) })
    }
  }
  return { records, unreadable }
}

function parseRecord(v: unknown): ImportSlotRecord {
  const o = v as Record<string, unknown>
  for (const k of ['slotName', 'connString', 'systemId', 'tenantId', 'timelineId', 'startedAt'] as const) {
    if (typeof o?.[k] !== 'string') throw new Error(`no ${k}`)
  }
  validateSlotName(o.slotName as string)
  return o as unknown as ImportSlotRecord
}
