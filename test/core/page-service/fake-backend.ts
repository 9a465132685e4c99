/**
 * A fake repository behind the page service for tests and the bench: deterministic pages derived from
 * (rel, blkno, lsn), a last_record_lsn that tests advance by hand or on a timer, a configurable GC cutoff,
 * optional random delays (to make requests complete out of order), and a log of the LSNs reads used.
 */
import { randomInt } from 'node:crypto'
import { NotFoundError, TimeoutError, UsageError, PageserverError } from '../../../src/core/lib/errors.js'
import { type Lsn, lsn } from '../../../src/core/pg/lsn.js'
import type { RelTag } from '../../../src/core/pg/reltag.js'
import type { TenantId, TimelineId } from '../../../src/core/model/ids.js'
import type { BasebackupOptions, BasebackupStream, PageServiceBackend, PageServiceTimeline } from '../../../src/core/page-service/backend.js'

export const TENANT = '0123456789abcdef0123456789abcdef' as TenantId
export const TIMELINE = 'fedcba9876543210fedcba9876543210' as TimelineId
export const OTHER_TENANT = '11111111111111111111111111111111' as TenantId

export const REL: RelTag = { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0 }

/** A page that names where it came from: rel, blkno and lsn at fixed offsets, then a pattern. */
export function fakePage(rel: RelTag, blkno: number, at: Lsn): Buffer {
  const p = Buffer.alloc(8192)
  p.writeUInt32BE(rel.spcNode, 0)
  p.writeUInt32BE(rel.dbNode, 4)
  p.writeUInt32BE(rel.relNode, 8)
  p.writeUInt8(rel.forkNum, 12)
  p.writeUInt32BE(blkno, 16)
  p.writeBigUInt64BE(at, 24)
  for (let i = 32; i < 8192; i += 4) p.writeUInt32BE((blkno * 2654435761 + i) >>> 0, i)
  return p
}

function relKey(r: RelTag): string {
  return `${r.spcNode}/${r.dbNode}/${r.relNode}/${r.forkNum}`
}

export interface Read {
  readonly what: string
  readonly lsn: Lsn
}

export class FakeTimeline implements PageServiceTimeline {
  last: Lsn
  gcCutoff: Lsn = lsn(0)
  readonly sizes = new Map<string, number>()
  /** Max random delay of each read in ms (0 = answer at once). */
  readDelayMaxMs = 0
  readonly reads: Read[] = []
  /** Indexes into `reads` in the order the reads finished (differs from `reads` with delays). */
  readonly completionOrder: number[] = []
  /** The tar the backup produces: chunks of these sizes, each filled with its index. */
  tarChunkSizes: number[] = [512, 10_000, 300_000, 1]
  lastBackupOptions: BasebackupOptions | null = null
  /**
   * Which reads answer at once (a value or a synchronous throw, as the repository does for cached and
   * image pages) instead of a promise: none, all, or GetPage of even blocks only (the rest after the delay).
   */
  answerAtOnce: 'never' | 'always' | 'even-blocks' = 'never'
  /** Set by a test: the timeline was deleted (PageServiceTimeline.deleted). */
  isDeleted = false
  /** A failure to throw from the next read, once. */
  failNextRead: Error | null = null
  /** What `readFailed` was told, in order. */
  readonly readFailures: unknown[] = []
  private waiters: Array<{ lsn: Lsn; resolve: () => void }> = []
  private timer: NodeJS.Timeout | null = null

  constructor(last: Lsn = lsn(0x1000_0000)) {
    this.last = last
    this.sizes.set(relKey(REL), 10)
    this.sizes.set(relKey({ ...REL, relNode: 16385 }), 3)
  }

  lastRecordLsn(): Lsn {
    return this.last
  }
  gcCutoffLsn(): Lsn {
    return this.gcCutoff
  }
  minReadableLsn(): Lsn {
    return this.gcCutoff
  }
  diskConsistentLsn(): Lsn {
    return this.last
  }
  walReceiverStatus(): string {
    return 'fake'
  }
  readFailed(err: unknown): void {
    this.readFailures.push(err)
  }
  deleted(): boolean {
    return this.isDeleted
  }

  advanceTo(to: Lsn): void {
    if (to > this.last) this.last = to
    const ready = this.waiters.filter((w) => w.lsn <= this.last)
    this.waiters = this.waiters.filter((w) => w.lsn > this.last)
    for (const w of ready) w.resolve()
  }

  /** Advances last_record_lsn by `step` every `everyMs` until `stopAdvancing`. */
  startAdvancing(step: bigint, everyMs: number): void {
    this.stopAdvancing()
    this.timer = setInterval(() => this.advanceTo(lsn(this.last + step)), everyMs)
  }

  stopAdvancing(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }

  waitForLsn(target: Lsn, timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (target <= this.last) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const entry = {
        lsn: target,
        resolve: () => {
          clearTimeout(timer)
          signal.removeEventListener('abort', onAbort)
          resolve()
        },
      }
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== entry)
        signal.removeEventListener('abort', onAbort)
        reject(new TimeoutError('WAIT_LSN_TIMEOUT', 'timed out'))
      }, timeoutMs)
      const onAbort = (): void => {
        clearTimeout(timer)
        this.waiters = this.waiters.filter((w) => w !== entry)
        reject(new PageserverError('interrupted', 'ABORTED', 'aborted'))
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.waiters.push(entry)
    })
  }

  /** A read after the random delay (if any); throws `failNextRead`. */
  private async read(what: string, at: Lsn): Promise<void> {
    const id = this.started(what, at)
    if (this.readDelayMaxMs > 0) await new Promise((r) => setTimeout(r, randomInt(this.readDelayMaxMs + 1)))
    this.completed(id)
  }

  /** `value()` at once (a read without delay) or after `read` (the promise); either throws `failNextRead` first. */
  private answer<T>(what: string, at: Lsn, atOnce: boolean, value: () => T): T | Promise<T> {
    if (!atOnce) return this.read(what, at).then(value)
    this.completed(this.started(what, at))
    return value()
  }

  private started(what: string, at: Lsn): number {
    this.reads.push({ what, lsn: at })
    return this.reads.length - 1
  }

  private completed(id: number): void {
    this.completionOrder.push(id)
    const fail = this.failNextRead
    if (fail) {
      this.failNextRead = null
      throw fail
    }
  }

  relExists(rel: RelTag, at: Lsn): boolean | Promise<boolean> {
    return this.answer('exists', at, this.answerAtOnce === 'always', () => this.existsNow(rel))
  }

  private existsNow(rel: RelTag): boolean {
    if (rel.relNode === 0) throw new UsageError('INVALID_RELNODE', 'invalid relnode')
    return this.sizes.has(relKey(rel))
  }

  relSize(rel: RelTag, at: Lsn): number | Promise<number> {
    return this.answer('nblocks', at, this.answerAtOnce === 'always', () => this.sizeNow(rel, at))
  }

  private sizeNow(rel: RelTag, at: Lsn): number {
    const n = this.sizes.get(relKey(rel))
    if (n !== undefined) return n
    if (rel.forkNum === 1 || rel.forkNum === 2) return 0
    throw new NotFoundError('REL_MISSING', `could not find data for key ${relKey(rel)} at LSN ${at}`)
  }

  getPage(rel: RelTag, blkno: number, at: Lsn): Buffer | Promise<Buffer> {
    const atOnce = this.answerAtOnce === 'always' || (this.answerAtOnce === 'even-blocks' && blkno % 2 === 0)
    return this.answer('getpage', at, atOnce, () => this.pageNow(rel, blkno, at))
  }

  private pageNow(rel: RelTag, blkno: number, at: Lsn): Buffer {
    const n = this.sizes.get(relKey(rel)) ?? 0
    if (blkno >= n) return Buffer.alloc(8192)
    return fakePage(rel, blkno, at)
  }

  async dbSize(dbNode: number, at: Lsn): Promise<bigint> {
    await this.read('dbsize', at)
    let blocks = 0
    for (const [k, n] of this.sizes) if (k.startsWith(`1663/${dbNode}/`)) blocks += n
    return BigInt(blocks) * 8192n
  }

  async slruSegment(kind: 0 | 1 | 2, segno: number, at: Lsn): Promise<Buffer> {
    await this.read('slru', at)
    const n = segno % 4 === 3 ? 0 : (segno % 32) + 1
    const b = Buffer.alloc(n * 8192)
    for (let i = 0; i < n; i++) b.fill(kind * 64 + i, i * 8192, (i + 1) * 8192)
    return b
  }

  async basebackup(opts: BasebackupOptions): Promise<BasebackupStream> {
    this.lastBackupOptions = opts
    const sizes = this.tarChunkSizes
    async function* tar(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < sizes.length; i++) yield Buffer.alloc(sizes[i]!, i + 1)
    }
    return { lsn: opts.lsn ?? this.last, tar: tar() }
  }

  /** From now on a backup sends 1,000 bytes of 7s, then fails with what `failure()` throws (or returns). */
  failBackupsMidway(failure: () => unknown): void {
    this.basebackup = async () => ({
      lsn: this.last,
      tar: (async function* () {
        yield Buffer.alloc(1000, 7)
        throw failure()
      })(),
    })
  }
}

/** The tar bytes FakeTimeline.basebackup produces for `sizes`. */
export function fakeTar(sizes: number[]): Buffer {
  return Buffer.concat(sizes.map((n, i) => Buffer.alloc(n, i + 1)))
}

export class FakeBackend implements PageServiceBackend {
  readonly timelines = new Map<string, FakeTimeline>()

  constructor() {
    this.timelines.set(`${TENANT}/${TIMELINE}`, new FakeTimeline())
    this.timelines.set(`${OTHER_TENANT}/${TIMELINE}`, new FakeTimeline())
  }

  get main(): FakeTimeline {
    return this.timelines.get(`${TENANT}/${TIMELINE}`)!
  }

  timeline(tenantId: TenantId, timelineId: TimelineId): FakeTimeline {
    const t = this.timelines.get(`${tenantId}/${timelineId}`)
    if (!t) throw new NotFoundError('TIMELINE_NOT_FOUND', `timeline ${tenantId}/${timelineId} is not found`)
    return t
  }

  stop(): void {
    for (const t of this.timelines.values()) t.stopAdvancing()
  }
}
