/**
 * The PostgreSQL-level state ingest keeps while turning WAL into keys: relation sizes, the database and
 * relation directories, SLRU segments, prepared transactions, the CheckPoint and pg_control.
 *
 * Every piece is loaded lazily from the timeline (latest values) the first time ingest needs it, then kept
 * here as the source of truth: ingest is the only writer of a timeline, so the cache never goes stale.
 * Changes mark pieces dirty; `flush(put)` writes the dirty ones as whole values at the current record's
 * end LSN (a directory is one value, rewritten whole when it changes).
 */
import { CorruptionError } from '../lib/errors.js'
import type { Key } from '../model/key.js'
import { encodeValue, imageValue } from '../model/value.js'
import { decodeCheckPoint, decodeControlFile, encodeCheckPoint, encodeControlFile, type CheckPoint, type ControlFileData } from '../pg/controlfile.js'
import type { RelTag } from '../pg/reltag.js'
import { SlruKind, type SlruKindFork } from '../pg/slru.js'
import {
  checkpointKey,
  controlFileKey,
  dbDirKey,
  decodeBlockCount,
  decodeDbDir,
  decodeRelDir,
  decodeU32Set,
  encodeBlockCount,
  encodeDbDir,
  encodeRelDir,
  encodeU32Set,
  relDirKey,
  relKeyPrefix,
  relSizeKey,
  slruDirKey,
  slruSegmentSizeKey,
  twoPhaseDirKey,
} from './mapping.js'

/** Reads the latest image of a metadata key (null if the key does not exist). */
export type LatestImageReader = (key: Key) => Buffer | null
/** Writes an encoded value at the current record's end LSN. */
export type ValueWriter = (key: Key, value: Buffer) => void

/**
 * Map key of a relation fork: its key prefix (mapping.ts caches it per hot relation, so the per-record
 * lookups of ingest build no string).
 */
const relKey = (r: RelTag) => relKeyPrefix(r)
const dbKeyOf = (spc: number, db: number) => `${spc}/${db}`

export class IngestState {
  private readonly relSizes = new Map<string, number>()
  private dbDir: Map<string, { spcNode: number; dbNode: number; hasRelmap: boolean }> | null = null
  private readonly relDirs = new Map<string, Set<string>>()
  private readonly slru = new Map<SlruKindFork, Map<number, number>>()
  private twophase: Set<number> | null = null
  private checkpointValue: CheckPoint | null = null
  private control: ControlFileData | null = null

  private readonly dirtyRelSizes = new Map<string, RelTag>()
  private dbDirDirty = false
  private readonly dirtyRelDirs = new Set<string>()
  private readonly dirtySlruDirs = new Set<SlruKindFork>()
  private readonly dirtySlruSegs = new Map<string, { kind: SlruKindFork; segno: number }>()
  private twophaseDirty = false
  private checkpointDirty = false
  private controlDirty = false

  constructor(private readonly read: LatestImageReader) {}

  // --- databases and relations ---

  private loadDbDir(): Map<string, { spcNode: number; dbNode: number; hasRelmap: boolean }> {
    if (this.dbDir === null) {
      const v = this.read(dbDirKey())
      this.dbDir = new Map((v ? decodeDbDir(v) : []).map((e) => [dbKeyOf(e.spcNode, e.dbNode), e]))
    }
    return this.dbDir
  }

  private loadRelDir(spc: number, db: number): Set<string> {
    const k = dbKeyOf(spc, db)
    let s = this.relDirs.get(k)
    if (!s) {
      const v = this.read(relDirKey(spc, db))
      s = new Set((v ? decodeRelDir(v) : []).map((e) => `${e.relNode}/${e.forkNum}`))
      this.relDirs.set(k, s)
    }
    return s
  }

  databases(): Array<{ spcNode: number; dbNode: number; hasRelmap: boolean }> {
    return [...this.loadDbDir().values()]
  }

  /** Makes sure the database exists in the database directory (with an empty relation directory). */
  ensureDatabase(spc: number, db: number, hasRelmap = false): void {
    const dir = this.loadDbDir()
    const k = dbKeyOf(spc, db)
    const cur = dir.get(k)
    if (!cur) {
      dir.set(k, { spcNode: spc, dbNode: db, hasRelmap })
      this.dbDirDirty = true
      this.loadRelDir(spc, db)
      this.dirtyRelDirs.add(k)
    } else if (hasRelmap && !cur.hasRelmap) {
      cur.hasRelmap = true
      this.dbDirDirty = true
    }
  }

  /** Removes a database and empties its relation directory. */
  dropDatabase(spc: number, db: number): RelTag[] {
    const k = dbKeyOf(spc, db)
    const rels = this.relationsOf(spc, db)
    this.relDirs.set(k, new Set())
    this.dirtyRelDirs.add(k)
    if (this.loadDbDir().delete(k)) this.dbDirDirty = true
    for (const r of rels) this.relSizes.delete(relKey(r))
    return rels
  }

  relationsOf(spc: number, db: number): RelTag[] {
    return [...this.loadRelDir(spc, db)].map((s) => {
      const [relNode, forkNum] = s.split('/').map(Number)
      return { spcNode: spc, dbNode: db, relNode: relNode!, forkNum: forkNum! }
    })
  }

  relExists(r: RelTag): boolean {
    // relSizes holds only existing forks (createRel sets, dropRel and dropDatabase delete): a hit answers
    // without building the directory entry's name.
    if (this.relSizes.has(relKey(r))) return true
    return this.loadRelDir(r.spcNode, r.dbNode).has(`${r.relNode}/${r.forkNum}`)
  }

  /** Creates the relation fork (size 0) unless it exists; its database too. Returns whether it was new. */
  createRel(r: RelTag): boolean {
    this.ensureDatabase(r.spcNode, r.dbNode)
    const dir = this.loadRelDir(r.spcNode, r.dbNode)
    const name = `${r.relNode}/${r.forkNum}`
    if (dir.has(name)) return false
    dir.add(name)
    this.dirtyRelDirs.add(dbKeyOf(r.spcNode, r.dbNode))
    this.setRelSize(r, 0)
    return true
  }

  dropRel(r: RelTag): boolean {
    const dir = this.loadRelDir(r.spcNode, r.dbNode)
    if (!dir.delete(`${r.relNode}/${r.forkNum}`)) return false
    this.dirtyRelDirs.add(dbKeyOf(r.spcNode, r.dbNode))
    this.relSizes.delete(relKey(r))
    this.dirtyRelSizes.delete(relKey(r))
    return true
  }

  /** Current size in blocks (0 for a relation fork that does not exist). */
  relSize(r: RelTag): number {
    const k = relKey(r)
    let n = this.relSizes.get(k)
    if (n === undefined) {
      if (!this.relExists(r)) return 0
      const v = this.read(relSizeKey(r))
      n = v ? decodeBlockCount(v, `size of ${k}`) : 0
      this.relSizes.set(k, n)
    }
    return n
  }

  setRelSize(r: RelTag, nblocks: number): void {
    const k = relKey(r)
    if (this.relSizes.get(k) === nblocks) return
    this.relSizes.set(k, nblocks)
    this.dirtyRelSizes.set(k, r)
  }

  // --- SLRU ---

  private loadSlru(kind: SlruKindFork): Map<number, number> {
    let m = this.slru.get(kind)
    if (!m) {
      const v = this.read(slruDirKey(kind))
      m = new Map()
      for (const segno of v ? decodeU32Set(v, 'SLRU directory') : []) {
        const size = this.read(slruSegmentSizeKey(kind, segno))
        m.set(segno, size ? decodeBlockCount(size, 'SLRU segment size') : 0)
      }
      this.slru.set(kind, m)
    }
    return m
  }

  /** Pages in an SLRU segment (0 if it does not exist). */
  slruSegmentSize(kind: SlruKindFork, segno: number): number {
    return this.loadSlru(kind).get(segno) ?? 0
  }

  slruSegmentExists(kind: SlruKindFork, segno: number): boolean {
    return this.loadSlru(kind).has(segno)
  }

  setSlruSegmentSize(kind: SlruKindFork, segno: number, pages: number): void {
    const m = this.loadSlru(kind)
    if (!m.has(segno)) this.dirtySlruDirs.add(kind)
    m.set(segno, pages)
    this.dirtySlruSegs.set(`${kind}/${segno}`, { kind, segno })
  }

  dropSlruSegment(kind: SlruKindFork, segno: number): void {
    if (this.loadSlru(kind).delete(segno)) this.dirtySlruDirs.add(kind)
  }

  slruSegments(kind: SlruKindFork): number[] {
    return [...this.loadSlru(kind).keys()].sort((a, b) => a - b)
  }

  // --- two-phase ---

  private loadTwophase(): Set<number> {
    if (this.twophase === null) {
      const v = this.read(twoPhaseDirKey())
      this.twophase = new Set(v ? decodeU32Set(v, 'two-phase directory') : [])
    }
    return this.twophase
  }

  addTwophase(xid: number): void {
    const s = this.loadTwophase()
    if (!s.has(xid)) {
      s.add(xid)
      this.twophaseDirty = true
    }
  }

  removeTwophase(xid: number): boolean {
    const removed = this.loadTwophase().delete(xid)
    if (removed) this.twophaseDirty = true
    return removed
  }

  // --- CheckPoint and pg_control ---

  get checkpoint(): CheckPoint {
    if (this.checkpointValue === null) {
      const v = this.read(checkpointKey())
      if (!v) throw new CorruptionError('INGEST_NO_CHECKPOINT', 'the timeline has no CheckPoint value (it was not imported from a data directory)')
      this.checkpointValue = decodeCheckPoint(v)
    }
    return this.checkpointValue
  }

  updateCheckpoint(patch: Partial<CheckPoint>): void {
    const cur = this.checkpoint
    let changed = false
    for (const [k, v] of Object.entries(patch) as Array<[keyof CheckPoint, CheckPoint[keyof CheckPoint]]>) {
      if (cur[k] !== v) {
        ;(cur as unknown as Record<string, unknown>)[k] = v
        changed = true
      }
    }
    if (changed) this.checkpointDirty = true
  }

  get controlFile(): ControlFileData {
    if (this.control === null) {
      const v = this.read(controlFileKey())
      if (!v) throw new CorruptionError('INGEST_NO_CONTROL_FILE', 'the timeline has no pg_control value')
      this.control = decodeControlFile(v)
    }
    return this.control
  }

  updateControlFile(patch: Partial<ControlFileData>): void {
    this.control = { ...this.controlFile, ...patch }
    this.controlDirty = true
  }

  // --- writing ---

  /** Writes every dirty piece through `put` and clears the dirty marks. */
  flush(put: ValueWriter): void {
    // Called after every record; most records change none of this.
    if (
      this.dirtyRelSizes.size === 0 &&
      !this.dbDirDirty &&
      this.dirtyRelDirs.size === 0 &&
      this.dirtySlruSegs.size === 0 &&
      this.dirtySlruDirs.size === 0 &&
      !this.twophaseDirty &&
      !this.checkpointDirty &&
      !this.controlDirty
    ) {
      return
    }
    for (const [k, r] of this.dirtyRelSizes) {
      const n = this.relSizes.get(k)
      if (n !== undefined) put(relSizeKey(r), encodeValue(imageValue(encodeBlockCount(n))))
    }
    this.dirtyRelSizes.clear()
    if (this.dbDirDirty && this.dbDir) put(dbDirKey(), encodeValue(imageValue(encodeDbDir(this.dbDir.values()))))
    this.dbDirDirty = false
    for (const k of this.dirtyRelDirs) {
      const [spc, db] = k.split('/').map(Number)
      const set = this.relDirs.get(k) ?? new Set<string>()
      const entries = [...set].map((s) => {
        const [relNode, forkNum] = s.split('/').map(Number)
        return { relNode: relNode!, forkNum: forkNum! }
      })
      put(relDirKey(spc!, db!), encodeValue(imageValue(encodeRelDir(entries))))
    }
    this.dirtyRelDirs.clear()
    for (const { kind, segno } of this.dirtySlruSegs.values()) {
      const n = this.slru.get(kind)?.get(segno)
      if (n !== undefined) put(slruSegmentSizeKey(kind, segno), encodeValue(imageValue(encodeBlockCount(n))))
    }
    this.dirtySlruSegs.clear()
    for (const kind of this.dirtySlruDirs) put(slruDirKey(kind), encodeValue(imageValue(encodeU32Set(this.loadSlru(kind).keys()))))
    this.dirtySlruDirs.clear()
    if (this.twophaseDirty && this.twophase) put(twoPhaseDirKey(), encodeValue(imageValue(encodeU32Set(this.twophase))))
    this.twophaseDirty = false
    if (this.checkpointDirty && this.checkpointValue) put(checkpointKey(), encodeValue(imageValue(encodeCheckPoint(this.checkpointValue))))
    this.checkpointDirty = false
    if (this.controlDirty && this.control) put(controlFileKey(), encodeValue(imageValue(encodeControlFile(this.control))))
    this.controlDirty = false
  }
}

export const ALL_SLRU_KINDS: readonly SlruKindFork[] = [SlruKind.Clog, SlruKind.MultixactOffsets, SlruKind.MultixactMembers]
