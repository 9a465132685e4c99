/**
 * PagestreamClient: the client half of a pagestream (v2 or v3) on one connection, with pipelining.
 *
 * Every call writes its request at once and returns a promise; responses arrive strictly in request
 * order, so the oldest pending request takes the next response. In v3 the echoed header (reqid,
 * request_lsn, not_modified_since) and request fields must match the request; in both versions the
 * response type must match (or be an Error). A mismatch means the stream is out of step: every pending
 * request fails and the connection is closed, since no later response could be trusted.
 *
 * Invariants: at most `outstandingMax` requests are pending; further calls wait for a slot (a caller
 * cannot queue without bound). An in-band Error (tag 103) fails only its own request. An ErrorResponse
 * from the server ends the stream: every pending request fails with it.
 */
import { CorruptionError } from '../lib/errors.js'
import { MAX_LSN, type Lsn } from '../pg/lsn.js'
import type { RelTag } from '../pg/reltag.js'
import {
  BLCKSZ,
  decodeResponse,
  encodeRequestFrame,
  GETPAGE_ECHO_BYTES,
  PagestreamResponseTag,
  type DecodedPagestreamResponse,
  type PagestreamRequest,
  type PagestreamRequestHeader,
  type PagestreamVersion,
} from '../protocol/pagestream.js'
import { BackendType } from '../protocol/pg-backend-messages.js'
import { parseErrorFields } from '../protocol/pg-frontend-messages.js'
import type { Frame } from '../protocol/pg-frames.js'
import { PagestreamRequestError, PageServiceServerError } from './client-errors.js'

/** Default bound on pipelined requests per connection (the server executes 32 at a time). */
export const PAGESTREAM_OUTSTANDING_MAX = 4096

export interface RequestLsns {
  /** Read as of this LSN; Lsn.MAX (default) = latest. */
  readonly requestLsn?: Lsn
  /** The client's promise that nothing changed since; default 0 with "latest", else = requestLsn. */
  readonly notModifiedSince?: Lsn
}

interface Pending {
  readonly req: PagestreamRequest
  /** The request as sent (CopyData frame): a v3 response echoes its bytes after the tag. */
  readonly frame: Buffer
  /** getPage's calls: resolved with the page alone. */
  readonly pageOnly: boolean
  readonly resolve: (r: DecodedPagestreamResponse | Buffer) => void
  readonly reject: (e: Error) => void
}

export interface PagestreamTransport {
  write(bytes: Buffer): void
  /** The stream is out of step or the server ended it badly: close the connection with this error. */
  fail(err: Error): void
}

export class PagestreamClient {
  private readonly pending: Pending[] = []
  private slotWaiters: Array<() => void> = []
  private nextReqid = 1n
  private endedWith: Error | null = null

  constructor(
    private readonly transport: PagestreamTransport,
    readonly version: PagestreamVersion,
    private readonly outstandingMax = PAGESTREAM_OUTSTANDING_MAX,
  ) {}

  get outstanding(): number {
    return this.pending.length
  }

  /** True until the server ended the stream or the connection failed. */
  get active(): boolean {
    return this.endedWith === null
  }

  getPage(rel: RelTag, blkno: number, lsns: RequestLsns = {}): Promise<Buffer> {
    return this.send({ type: 'getpage', hdr: this.header(lsns), rel, blkno }, true) as Promise<Buffer>
  }

  async nblocks(rel: RelTag, lsns: RequestLsns = {}): Promise<number> {
    const r = await this.request({ type: 'nblocks', hdr: this.header(lsns), rel })
    return (r as Extract<DecodedPagestreamResponse, { type: 'nblocks' }>).n_blocks
  }

  async exists(rel: RelTag, lsns: RequestLsns = {}): Promise<boolean> {
    const r = await this.request({ type: 'exists', hdr: this.header(lsns), rel })
    return (r as Extract<DecodedPagestreamResponse, { type: 'exists' }>).exists
  }

  async dbSize(dbnode: number, lsns: RequestLsns = {}): Promise<bigint> {
    const r = await this.request({ type: 'dbsize', hdr: this.header(lsns), dbnode })
    return (r as Extract<DecodedPagestreamResponse, { type: 'dbsize' }>).db_size
  }

  async slruSegment(kind: number, segno: number, lsns: RequestLsns = {}): Promise<Buffer> {
    const r = await this.request({ type: 'slru', hdr: this.header(lsns), kind, segno })
    return (r as Extract<DecodedPagestreamResponse, { type: 'slru' }>).segment
  }

  /** Sends any request (tests use it for hand-made headers) and resolves with the matching response. */
  request(req: PagestreamRequest): Promise<DecodedPagestreamResponse> {
    return this.send(req, false) as Promise<DecodedPagestreamResponse>
  }

  /** Writes `req` now when a slot is free (no extra promise hop), else once one is. */
  private send(req: PagestreamRequest, pageOnly: boolean): Promise<DecodedPagestreamResponse | Buffer> {
    if (this.pending.length < this.outstandingMax && this.endedWith === null) return this.enqueue(req, pageOnly)
    return this.sendWhenSlotFree(req, pageOnly)
  }

  private async sendWhenSlotFree(req: PagestreamRequest, pageOnly: boolean): Promise<DecodedPagestreamResponse | Buffer> {
    while (this.pending.length >= this.outstandingMax && this.endedWith === null) {
      await new Promise<void>((resolve) => this.slotWaiters.push(resolve))
    }
    if (this.endedWith !== null) throw this.endedWith
    return this.enqueue(req, pageOnly)
  }

  private enqueue(req: PagestreamRequest, pageOnly: boolean): Promise<DecodedPagestreamResponse | Buffer> {
    return new Promise((resolve, reject) => {
      const frame = encodeRequestFrame(req, this.version)
      this.pending.push({ req, frame, pageOnly, resolve, reject })
      this.transport.write(frame)
    })
  }

  private header(lsns: RequestLsns): PagestreamRequestHeader {
    const request_lsn = lsns.requestLsn ?? MAX_LSN
    const not_modified_since = lsns.notModifiedSince ?? (request_lsn === MAX_LSN ? (0n as Lsn) : request_lsn)
    const reqid = this.version === 3 ? this.nextReqid++ : 0n
    return { reqid, request_lsn, not_modified_since }
  }

  /** A frame from the server while the stream is active. Returns false if the stream no longer takes frames. */
  onFrame(frame: Frame): boolean {
    if (this.endedWith !== null) return false
    if (frame.type === BackendType.CopyData) {
      const head = this.pending.shift()
      if (head === undefined) return this.outOfStep('a pagestream response arrived with no request pending')
      if (head.pageOnly) {
        const page = matchingPage(frame.body, head.frame, this.version)
        if (page !== null) {
          head.resolve(page)
          this.wakeSlot()
          return true
        }
      }
      let resp: DecodedPagestreamResponse
      try {
        resp = decodeResponse(frame.body, this.version)
      } catch (err) {
        head.reject(err as Error)
        return this.outOfStep((err as Error).message)
      }
      const mismatch = checkMatch(head.req, resp)
      if (mismatch !== null) {
        const err = outOfStepError(mismatch)
        head.reject(err)
        return this.outOfStep(mismatch)
      }
      if (resp.type === 'error') head.reject(new PagestreamRequestError(resp.message))
      else head.resolve(head.pageOnly ? (resp as Extract<DecodedPagestreamResponse, { type: 'getpage' }>).page : resp)
      this.wakeSlot()
      return true
    }
    if (frame.type === BackendType.ErrorResponse) {
      this.end(new PageServiceServerError(parseErrorFields(frame.body), 'the page server ended the pagestream'))
      return true
    }
    if (frame.type === BackendType.NoticeResponse || frame.type === BackendType.ParameterStatus) return true
    return this.outOfStep(`unexpected message type 0x${frame.type.toString(16)} during pagestream`)
  }

  /** Fails every pending request and every later call with `err`. */
  end(err: Error): void {
    if (this.endedWith !== null) return
    this.endedWith = err
    for (const p of this.pending.splice(0)) p.reject(err)
    const waiters = this.slotWaiters
    this.slotWaiters = []
    for (const w of waiters) w()
  }

  private wakeSlot(): void {
    const w = this.slotWaiters.shift()
    if (w) w()
  }

  private outOfStep(message: string): true {
    const err = outOfStepError(message)
    this.end(err)
    this.transport.fail(err)
    return true
  }
}

function outOfStepError(message: string): CorruptionError {
  return new CorruptionError('PAGESTREAM_OUT_OF_STEP', `pagestream out of step: ${message}`, {
    hint: 'The server answered something other than the oldest pending request; the connection was closed.',
  })
}

/**
 * The page of a GetPage response whose every byte before the page is what `reqFrame` asked for: the tag,
 * and in v3 the echoed header and request fields, compared as bytes with the request as sent (bytes 6..47
 * of its CopyData frame: reqid, both LSNs, relation, block). Null for anything else (an error, another
 * type, a mismatch, a wrong length), which the full decode then explains.
 */
function matchingPage(body: Buffer, reqFrame: Buffer, version: PagestreamVersion): Buffer | null {
  const pageAt = version === 3 ? 1 + GETPAGE_ECHO_BYTES : 1
  if (body.length !== pageAt + BLCKSZ || body[0] !== PagestreamResponseTag.GetPage) return null
  for (let i = 1; i < pageAt; i++) if (body[i] !== reqFrame[5 + i]) return null
  return body.subarray(pageAt)
}

/** Null if `resp` may answer `req`, else what differs. */
function checkMatch(req: PagestreamRequest, resp: DecodedPagestreamResponse): string | null {
  if (resp.type !== 'error' && resp.type !== req.type) return `a ${resp.type} response to a ${req.type} request`
  if (resp.echo === null) return null
  const hdr = resp.type === 'error' ? resp.echo : resp.echo.hdr
  if (hdr.reqid !== req.hdr.reqid || hdr.request_lsn !== req.hdr.request_lsn || hdr.not_modified_since !== req.hdr.not_modified_since) {
    return `response for reqid ${hdr.reqid} while reqid ${req.hdr.reqid} was expected (or its LSNs differ)`
  }
  if (resp.type === 'error') return null
  const a = resp.echo as unknown as Record<string, unknown>
  const b = req as unknown as Record<string, unknown>
  for (const k of ['blkno', 'dbnode', 'kind', 'segno'] as const) if (a[k] !== b[k]) return `echoed ${k} ${String(a[k])} differs from ${String(b[k])}`
  if ('rel' in req) {
    const r = (resp.echo as { rel: RelTag }).rel
    if (r.spcNode !== req.rel.spcNode || r.dbNode !== req.rel.dbNode || r.relNode !== req.rel.relNode || r.forkNum !== req.rel.forkNum) {
      return 'echoed relation differs from the request'
    }
  }
  return null
}
