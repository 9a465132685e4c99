/**
 * Neon's pagestream messages, v2 and v3: the requests a compute sends inside CopyData after
 * `pagestream_v2|v3 <tenant> <timeline>`, and the responses it gets back. Encoder and decoder of both
 * directions sit side by side: the server decodes requests and encodes responses, the client does the
 * opposite, and the tests check each against bytes built by hand.
 *
 * Layouts (all integers big-endian; tags as NeonMessageTag in pgxn/neon/pagestore_client.h):
 *
 *   request  = tag u8, [reqid u64 (v3 only)], request_lsn u64, not_modified_since u64, body
 *     Exists 0 / Nblocks 1: RelTag          GetPage 2: RelTag, blkno u32
 *     DbSize 3: dbnode u32                  GetSlruSegment 4: kind u8, segno u32
 *   RelTag on the wire = spcnode u32, dbnode u32, relnode u32, forknum u8 (13 bytes, fork LAST).
 *
 *   v2 response = tag u8, body                        (no echo of the request)
 *   v3 response = tag u8, reqid, request_lsn, not_modified_since, echoed request fields, body
 *     Exists 100: exists u8     Nblocks 101: n_blocks u32     GetPage 102: page[8192]
 *     Error 103: message, NUL   DbSize 104: db_size i64      GetSlruSegment 105: n_blocks u32, n_blocks*8192
 *   (a v3 Error echoes only the 24-byte header, never the request fields)
 *
 * Worked example, v3 GetPage of 1663/5/16384 main blk 7, reqid 1, both LSNs 0/16B3748 (42 bytes):
 *   02 | 00..01 | 00 00 00 00 01 6b 37 48 | 00 00 00 00 01 6b 37 48 | 00 00 06 7f 00 00 00 05 00 00 40 00 00 | 00 00 00 07
 *
 * Strictness: both decoders reject trailing bytes. Neon's response decoder does the same ("remaining bytes
 * in msg"); its request parser does not, but a compute always sends exact sizes, and refusing them catches
 * a client that speaks v3 on a v2 stream (its requests are 8 bytes longer). Every length read from the
 * wire (an SLRU segment's n_blocks) is checked against its maximum before anything is allocated.
 */
import { readU64BE, writeU64BE } from '../lib/bytes.js'
import { CorruptionError, assert } from '../lib/errors.js'
import type { Lsn } from '../pg/lsn.js'
import type { RelTag } from '../pg/reltag.js'

export type PagestreamVersion = 2 | 3

export const BLCKSZ = 8192
/** PostgreSQL's SLRU_PAGES_PER_SEGMENT: an SLRU segment file has at most 32 pages. */
export const SLRU_PAGES_PER_SEGMENT = 32

export const PagestreamRequestTag = { Exists: 0, Nblocks: 1, GetPage: 2, DbSize: 3, GetSlruSegment: 4 } as const
export const PagestreamResponseTag = { Exists: 100, Nblocks: 101, GetPage: 102, Error: 103, DbSize: 104, GetSlruSegment: 105 } as const

/** SLRU kinds of GetSlruSegment: 0 pg_xact (CLOG), 1 pg_multixact/members, 2 pg_multixact/offsets. */
export const SlruKind = { Clog: 0, MultiXactMembers: 1, MultiXactOffsets: 2 } as const

/**
 * The start of an Error response's message for a read that found damaged files. Neon's classes go by the
 * message's prefix ("Read error" here, as Neon's computes expect); ours adds "data corrupted" so that
 * clients can tell a corruption (retrying will not help) from a failure that may pass.
 */
export const READ_ERROR_CORRUPTED_PREFIX = 'Read error: data corrupted: '
export type SlruKindNumber = 0 | 1 | 2

export interface PagestreamRequestHeader {
  /** Request id (v3); 0 on a v2 stream. */
  readonly reqid: bigint
  readonly request_lsn: Lsn
  readonly not_modified_since: Lsn
}

export interface ExistsRequest {
  readonly type: 'exists'
  readonly hdr: PagestreamRequestHeader
  readonly rel: RelTag
}
export interface NblocksRequest {
  readonly type: 'nblocks'
  readonly hdr: PagestreamRequestHeader
  readonly rel: RelTag
}
export interface GetPageRequest {
  readonly type: 'getpage'
  readonly hdr: PagestreamRequestHeader
  readonly rel: RelTag
  readonly blkno: number
}
export interface DbSizeRequest {
  readonly type: 'dbsize'
  readonly hdr: PagestreamRequestHeader
  readonly dbnode: number
}
export interface SlruSegmentRequest {
  readonly type: 'slru'
  readonly hdr: PagestreamRequestHeader
  readonly kind: number
  readonly segno: number
}

export type PagestreamRequest = ExistsRequest | NblocksRequest | GetPageRequest | DbSizeRequest | SlruSegmentRequest

/** A response as the server builds it: the request it answers (echoed in v3) and the result. */
export type PagestreamResponse =
  | { readonly type: 'exists'; readonly req: ExistsRequest; readonly exists: boolean }
  | { readonly type: 'nblocks'; readonly req: NblocksRequest; readonly n_blocks: number }
  | { readonly type: 'getpage'; readonly req: GetPageRequest; readonly page: Uint8Array }
  | { readonly type: 'dbsize'; readonly req: DbSizeRequest; readonly db_size: bigint }
  | { readonly type: 'slru'; readonly req: SlruSegmentRequest; readonly segment: Uint8Array }
  | { readonly type: 'error'; readonly hdr: PagestreamRequestHeader; readonly message: string }

/** A response as the client decodes it: `echo` is the echoed request (v3) or null (v2). */
export type DecodedPagestreamResponse =
  | { readonly type: 'exists'; readonly echo: ExistsRequest | null; readonly exists: boolean }
  | { readonly type: 'nblocks'; readonly echo: NblocksRequest | null; readonly n_blocks: number }
  | { readonly type: 'getpage'; readonly echo: GetPageRequest | null; readonly page: Buffer }
  | { readonly type: 'dbsize'; readonly echo: DbSizeRequest | null; readonly db_size: bigint }
  | { readonly type: 'slru'; readonly echo: SlruSegmentRequest | null; readonly segment: Buffer }
  | { readonly type: 'error'; readonly echo: PagestreamRequestHeader | null; readonly message: string }

const REL_TAG_BYTES = 13

function headerBytes(version: PagestreamVersion): number {
  return version === 3 ? 24 : 16
}

/** Size of a request's payload (tag included). */
export function requestBytes(type: PagestreamRequest['type'], version: PagestreamVersion): number {
  const body = type === 'exists' || type === 'nblocks' ? REL_TAG_BYTES : type === 'getpage' ? REL_TAG_BYTES + 4 : type === 'dbsize' ? 4 : 5
  return 1 + headerBytes(version) + body
}

/**
 * Bytes a v3 GetPage response echoes after its tag: the request's payload after its own tag (reqid, both
 * LSNs, relation, block), byte for byte.
 */
export const GETPAGE_ECHO_BYTES = requestBytes('getpage', 3) - 1

function malformed(what: string, message: string): CorruptionError {
  return new CorruptionError('PAGESTREAM_MALFORMED', `malformed pagestream ${what}: ${message}`, {
    hint: 'The peer does not speak this pagestream version; check that both sides use the same pagestream_v2 / pagestream_v3.',
  })
}

/** Bounds-checked big-endian cursor over one message (a subclass-free hot-path reader). */
class Cursor {
  pos = 0
  constructor(
    private readonly b: Buffer,
    private readonly what: string,
  ) {}
  need(n: number): void {
    if (this.pos + n > this.b.length) throw malformed(this.what, `truncated: wanted ${n} bytes at offset ${this.pos}, ${this.b.length - this.pos} left`)
  }
  u8(): number {
    this.need(1)
    return this.b[this.pos++]!
  }
  u32(): number {
    this.need(4)
    const v = this.b.readUInt32BE(this.pos)
    this.pos += 4
    return v
  }
  u64(): bigint {
    this.need(8)
    const v = readU64BE(this.b, this.pos)
    this.pos += 8
    return v
  }
  i64(): bigint {
    this.need(8)
    const v = this.b.readBigInt64BE(this.pos)
    this.pos += 8
    return v
  }
  rel(): RelTag {
    this.need(REL_TAG_BYTES)
    const spcNode = this.u32()
    const dbNode = this.u32()
    const relNode = this.u32()
    return { spcNode, dbNode, relNode, forkNum: this.u8() }
  }
  header(version: PagestreamVersion): PagestreamRequestHeader {
    const reqid = version === 3 ? this.u64() : 0n
    const request_lsn = this.u64() as Lsn
    return { reqid, request_lsn, not_modified_since: this.u64() as Lsn }
  }
  bytes(n: number): Buffer {
    this.need(n)
    const v = this.b.subarray(this.pos, this.pos + n)
    this.pos += n
    return v
  }
  end(): void {
    if (this.pos !== this.b.length) throw malformed(this.what, `${this.b.length - this.pos} unexpected bytes after the message`)
  }
}

// ---- Requests ----------------------------------------------------------------------------------------

/** Decodes one request payload (the body of a CopyData). Throws CorruptionError PAGESTREAM_MALFORMED. */
export function decodeRequest(payload: Buffer, version: PagestreamVersion): PagestreamRequest {
  const c = new Cursor(payload, 'request')
  const tag = c.u8()
  if (tag > PagestreamRequestTag.GetSlruSegment) throw malformed('request', `invalid tag ${tag}`)
  const hdr = c.header(version)
  let req: PagestreamRequest
  switch (tag) {
    case PagestreamRequestTag.Exists:
      req = { type: 'exists', hdr, rel: c.rel() }
      break
    case PagestreamRequestTag.Nblocks:
      req = { type: 'nblocks', hdr, rel: c.rel() }
      break
    case PagestreamRequestTag.GetPage: {
      const rel = c.rel()
      req = { type: 'getpage', hdr, rel, blkno: c.u32() }
      break
    }
    case PagestreamRequestTag.DbSize:
      req = { type: 'dbsize', hdr, dbnode: c.u32() }
      break
    default: {
      const kind = c.u8()
      req = { type: 'slru', hdr, kind, segno: c.u32() }
    }
  }
  c.end()
  return req
}

const REQUEST_TAGS: Readonly<Record<PagestreamRequest['type'], number>> = {
  exists: PagestreamRequestTag.Exists,
  nblocks: PagestreamRequestTag.Nblocks,
  getpage: PagestreamRequestTag.GetPage,
  dbsize: PagestreamRequestTag.DbSize,
  slru: PagestreamRequestTag.GetSlruSegment,
}

function writeHeader(b: Buffer, off: number, hdr: PagestreamRequestHeader, version: PagestreamVersion): number {
  if (version === 3) {
    writeU64BE(b, hdr.reqid, off)
    off += 8
  }
  writeU64BE(b, hdr.request_lsn, off)
  writeU64BE(b, hdr.not_modified_since, off + 8)
  return off + 16
}

function writeRel(b: Buffer, off: number, rel: RelTag): number {
  b.writeUInt32BE(rel.spcNode, off)
  b.writeUInt32BE(rel.dbNode, off + 4)
  b.writeUInt32BE(rel.relNode, off + 8)
  b[off + 12] = rel.forkNum
  return off + REL_TAG_BYTES
}

function writeRequestBody(b: Buffer, off: number, req: PagestreamRequest): number {
  switch (req.type) {
    case 'exists':
    case 'nblocks':
      return writeRel(b, off, req.rel)
    case 'getpage':
      off = writeRel(b, off, req.rel)
      b.writeUInt32BE(req.blkno, off)
      return off + 4
    case 'dbsize':
      b.writeUInt32BE(req.dbnode, off)
      return off + 4
    case 'slru':
      b[off] = req.kind
      b.writeUInt32BE(req.segno, off + 1)
      return off + 5
  }
}

/**
 * Encodes a request as a whole CopyData message ('d', length, payload): what the client writes.
 * In v2 the reqid is not sent.
 */
export function encodeRequestFrame(req: PagestreamRequest, version: PagestreamVersion): Buffer {
  const n = requestBytes(req.type, version)
  const b = Buffer.allocUnsafe(5 + n)
  b[0] = 0x64
  b.writeUInt32BE(4 + n, 1)
  b[5] = REQUEST_TAGS[req.type]
  const end = writeRequestBody(b, writeHeader(b, 6, req.hdr, version), req)
  assert(end === b.length, 'pagestream request size mismatch')
  return b
}

/** Encodes a request payload (without CopyData framing). */
export function encodeRequest(req: PagestreamRequest, version: PagestreamVersion): Buffer {
  return encodeRequestFrame(req, version).subarray(5)
}

// ---- Responses ---------------------------------------------------------------------------------------

/** Bytes of the echoed request fields after the header in a v3 response. */
function echoBytes(req: PagestreamRequest): number {
  return requestBytes(req.type, 3) - 25
}

/**
 * Encodes a response as a whole CopyData message, in one allocation (the server's hot path: a GetPage
 * response is the 8 KiB page plus 6 bytes in v2, 42 in v3).
 */
export function encodeResponseFrame(resp: PagestreamResponse, version: PagestreamVersion): Buffer {
  let bodyBytes: number
  let message: Buffer | undefined
  switch (resp.type) {
    case 'exists':
      bodyBytes = 1
      break
    case 'nblocks':
      bodyBytes = 4
      break
    case 'getpage':
      assert(resp.page.length === BLCKSZ, () => `a GetPage response carries ${BLCKSZ} bytes, not ${resp.page.length}`)
      bodyBytes = BLCKSZ
      break
    case 'dbsize':
      bodyBytes = 8
      break
    case 'slru':
      assert(resp.segment.length % BLCKSZ === 0 && resp.segment.length <= SLRU_PAGES_PER_SEGMENT * BLCKSZ, () => `an SLRU segment of ${resp.segment.length} bytes is not 0..32 whole pages`)
      bodyBytes = 4 + resp.segment.length
      break
    case 'error':
      message = Buffer.from(resp.message.replaceAll('\0', ' '), 'utf8')
      bodyBytes = message.length + 1
      break
  }
  const prefix = version === 3 ? (resp.type === 'error' ? 24 : 24 + echoBytes(resp.req)) : 0
  const n = 1 + prefix + bodyBytes
  const b = Buffer.allocUnsafe(5 + n)
  b[0] = 0x64
  b.writeUInt32BE(4 + n, 1)
  let off = 6
  if (version === 3) {
    if (resp.type === 'error') off = writeHeader(b, off, resp.hdr, 3)
    else off = writeRequestBody(b, writeHeader(b, off, resp.req.hdr, 3), resp.req)
  }
  switch (resp.type) {
    case 'exists':
      b[5] = PagestreamResponseTag.Exists
      b[off++] = resp.exists ? 1 : 0
      break
    case 'nblocks':
      b[5] = PagestreamResponseTag.Nblocks
      off = b.writeUInt32BE(resp.n_blocks, off)
      break
    case 'getpage':
      b[5] = PagestreamResponseTag.GetPage
      b.set(resp.page, off)
      off += BLCKSZ
      break
    case 'dbsize':
      b[5] = PagestreamResponseTag.DbSize
      off = b.writeBigInt64BE(resp.db_size, off)
      break
    case 'slru':
      b[5] = PagestreamResponseTag.GetSlruSegment
      off = b.writeUInt32BE(resp.segment.length / BLCKSZ, off)
      b.set(resp.segment, off)
      off += resp.segment.length
      break
    case 'error':
      b[5] = PagestreamResponseTag.Error
      message!.copy(b, off)
      off += message!.length
      b[off++] = 0
      break
  }
  assert(off === b.length, 'pagestream response size mismatch')
  return b
}

/**
 * The head of a GetPage response, up to the page (the server writes the page after it without copying it
 * in), built from the request's own payload as decodeRequest accepted it: in v3 the echo is that payload
 * after its tag byte (reqid, both LSNs, relation, block), copied as bytes rather than encoded again from the
 * decoded fields (no BigInt writes on the page service's hot path). Head + page = encodeResponseFrame's bytes.
 */
export function encodeGetPageResponseHeadFrom(payload: Buffer, version: PagestreamVersion): Buffer {
  const echo = version === 3 ? GETPAGE_ECHO_BYTES : 0
  assert(payload.length === requestBytes('getpage', version) && payload[0] === PagestreamRequestTag.GetPage, 'not a GetPage request payload')
  const b = Buffer.allocUnsafe(6 + echo)
  b[0] = 0x64
  b.writeUInt32BE(4 + 1 + echo + BLCKSZ, 1)
  b[5] = PagestreamResponseTag.GetPage
  for (let i = 0; i < echo; i++) b[6 + i] = payload[1 + i]!
  return b
}

/** Encodes a response payload (without CopyData framing). */
export function encodeResponse(resp: PagestreamResponse, version: PagestreamVersion): Buffer {
  return encodeResponseFrame(resp, version).subarray(5)
}

/**
 * Decodes one response payload. Views into `payload` are returned for pages and segments (no copy).
 * Throws CorruptionError PAGESTREAM_MALFORMED on unknown tags, truncation, or trailing bytes.
 */
export function decodeResponse(payload: Buffer, version: PagestreamVersion): DecodedPagestreamResponse {
  const c = new Cursor(payload, 'response')
  const tag = c.u8()
  const v3 = version === 3
  switch (tag) {
    case PagestreamResponseTag.Exists: {
      const echo: ExistsRequest | null = v3 ? { type: 'exists', hdr: c.header(3), rel: c.rel() } : null
      const v = c.u8()
      if (v > 1) throw malformed('response', `Exists value ${v} is not 0 or 1`)
      c.end()
      return { type: 'exists', echo, exists: v === 1 }
    }
    case PagestreamResponseTag.Nblocks: {
      const echo: NblocksRequest | null = v3 ? { type: 'nblocks', hdr: c.header(3), rel: c.rel() } : null
      const n_blocks = c.u32()
      c.end()
      return { type: 'nblocks', echo, n_blocks }
    }
    case PagestreamResponseTag.GetPage: {
      let echo: GetPageRequest | null = null
      if (v3) {
        const hdr = c.header(3)
        const rel = c.rel()
        echo = { type: 'getpage', hdr, rel, blkno: c.u32() }
      }
      const page = c.bytes(BLCKSZ)
      c.end()
      return { type: 'getpage', echo, page }
    }
    case PagestreamResponseTag.Error: {
      const echo = v3 ? c.header(3) : null
      const rest = c.bytes(payload.length - c.pos)
      const nul = rest.indexOf(0)
      if (nul < 0) throw malformed('response', 'error message is not NUL-terminated')
      if (nul !== rest.length - 1) throw malformed('response', `${rest.length - 1 - nul} unexpected bytes after the error message`)
      return { type: 'error', echo, message: rest.toString('utf8', 0, nul) }
    }
    case PagestreamResponseTag.DbSize: {
      const echo: DbSizeRequest | null = v3 ? { type: 'dbsize', hdr: c.header(3), dbnode: c.u32() } : null
      const db_size = c.i64()
      c.end()
      return { type: 'dbsize', echo, db_size }
    }
    case PagestreamResponseTag.GetSlruSegment: {
      let echo: SlruSegmentRequest | null = null
      if (v3) {
        const hdr = c.header(3)
        const kind = c.u8()
        echo = { type: 'slru', hdr, kind, segno: c.u32() }
      }
      const n_blocks = c.u32()
      if (n_blocks > SLRU_PAGES_PER_SEGMENT) throw malformed('response', `SLRU segment of ${n_blocks} blocks; at most ${SLRU_PAGES_PER_SEGMENT} exist`)
      const segment = c.bytes(n_blocks * BLCKSZ)
      c.end()
      return { type: 'slru', echo, segment }
    }
    default:
      throw malformed('response', `invalid tag ${tag}`)
  }
}
