/**
 * The server side of the PostgreSQL v3 protocol, as much as a page server needs: parsing what a client
 * sends (startup packets and the frontend messages of the simple and minimal extended query protocol) and
 * encoding what a server answers (authentication requests, parameter status, errors, COPY framing).
 *
 * Why our own code and not pg-gateway 0.3.0-beta.4: the page service's hot path is CopyData in both
 * directions, and what matters there is control over limits (every length checked before buffering),
 * back-pressure (stop reading the socket while requests are in flight or the write buffer is full) and
 * pipelining (responses written in request order as they complete). pg-gateway hands whole messages to an
 * `onMessage` generator, never calls its `onQuery`, and would leave all three to us anyway; what it would
 * add (TLS, SCRAM) the page service does not use: Neon computes send a JWT as a cleartext password.
 * The whole server side is ~250 lines here, pure (no sockets), and tested byte by byte.
 *
 * Layouts follow PostgreSQL 15's protocol docs and `src/backend/libpq/pqcomm.c` / `pqformat.c`:
 * typed message = type u8, length u32 BE (counting itself), body. Strings are NUL-terminated UTF-8.
 * Request codes of untyped startup packets: protocol 3.0 = 196608, CancelRequest = 80877102,
 * SSLRequest = 80877103, GSSENCRequest = 80877104 (all `1234 << 16 | 56xx`).
 */
import { CorruptionError } from '../lib/errors.js'
import { BinaryReader, BinaryWriter } from '../lib/bytes.js'

export const PROTOCOL_VERSION_3 = 3 << 16
export const CANCEL_REQUEST_CODE = (1234 << 16) | 5678
export const SSL_REQUEST_CODE = (1234 << 16) | 5679
export const GSSENC_REQUEST_CODE = (1234 << 16) | 5680

/** Most startup parameters a client may send; libpq sends fewer than 10. */
export const STARTUP_PARAMETERS_MAX = 64

/** Frontend message types (the byte before the length). */
export const FrontendType = {
  Query: 0x51, // 'Q'
  Parse: 0x50, // 'P'
  Bind: 0x42, // 'B'
  Describe: 0x44, // 'D'
  Execute: 0x45, // 'E'
  Close: 0x43, // 'C'
  Sync: 0x53, // 'S'
  Flush: 0x48, // 'H'
  Terminate: 0x58, // 'X'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyFail: 0x66, // 'f'
  Password: 0x70, // 'p'
} as const

/** Backend message types. */
export const BackendType = {
  Authentication: 0x52, // 'R'
  ParameterStatus: 0x53, // 'S'
  BackendKeyData: 0x4b, // 'K'
  ReadyForQuery: 0x5a, // 'Z'
  ErrorResponse: 0x45, // 'E'
  NoticeResponse: 0x4e, // 'N'
  CommandComplete: 0x43, // 'C'
  RowDescription: 0x54, // 'T'
  DataRow: 0x44, // 'D'
  CopyInResponse: 0x47, // 'G'
  CopyOutResponse: 0x48, // 'H'
  CopyBothResponse: 0x57, // 'W'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  ParseComplete: 0x31, // '1'
  BindComplete: 0x32, // '2'
  CloseComplete: 0x33, // '3'
  NoData: 0x6e, // 'n'
  ParameterDescription: 0x74, // 't'
  NegotiateProtocolVersion: 0x76, // 'v'
} as const

/** AuthenticationRequest codes (body of 'R'). */
export const AuthCode = { Ok: 0, CleartextPassword: 3, MD5Password: 5, SASL: 10 } as const

export type StartupPacket =
  | { readonly kind: 'ssl' }
  | { readonly kind: 'gssenc' }
  | { readonly kind: 'cancel'; readonly processId: number; readonly secretKey: number }
  | { readonly kind: 'startup'; readonly version: number; readonly params: ReadonlyMap<string, string> }

function protocolError(code: string, message: string): CorruptionError {
  return new CorruptionError(code, message, { hint: 'Connect with a PostgreSQL client (libpq, psql) speaking protocol version 3.' })
}

/** Parses the body of an untyped startup packet (after its length field). */
export function parseStartupPacket(body: Buffer): StartupPacket {
  const r = new BinaryReader(body, 0, body.length, 'startup packet')
  const code = r.u32be()
  if (code === SSL_REQUEST_CODE) return { kind: 'ssl' }
  if (code === GSSENC_REQUEST_CODE) return { kind: 'gssenc' }
  if (code === CANCEL_REQUEST_CODE) {
    if (r.remaining !== 8) throw protocolError('PG_BAD_STARTUP_PACKET', 'CancelRequest message is malformed, backend PID / secret key missing')
    return { kind: 'cancel', processId: r.i32be(), secretKey: r.i32be() }
  }
  if (code >>> 16 === 1234) throw protocolError('PG_BAD_STARTUP_PACKET', `unrecognized request code ${code & 0xffff}`)
  if (code >>> 16 !== 3) {
    throw protocolError('PG_UNSUPPORTED_PROTOCOL', `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}: server supports 3.0`)
  }
  // Parameters: name\0value\0 ... \0. The final NUL must be the last byte.
  const params = new Map<string, string>()
  if (body.length === 4 || body[body.length - 1] !== 0) throw protocolError('PG_BAD_STARTUP_PACKET', 'StartupMessage params: missing null terminator')
  for (;;) {
    if (r.remaining === 1) break
    if (params.size >= STARTUP_PARAMETERS_MAX) throw protocolError('PG_BAD_STARTUP_PACKET', `StartupMessage has more than ${STARTUP_PARAMETERS_MAX} parameters`)
    const name = r.cstring()
    if (r.remaining <= 1) throw protocolError('PG_BAD_STARTUP_PACKET', `StartupMessage parameter "${name}" has no value`)
    params.set(name, r.cstring())
  }
  return { kind: 'startup', version: code, params }
}

/** A body that is exactly one NUL-terminated string (Query, PasswordMessage). */
export function parseCString(body: Buffer, what: string): string {
  if (body.length === 0 || body[body.length - 1] !== 0) throw protocolError('PG_PROTOCOL_VIOLATION', `${what} message is not NUL-terminated`)
  const nul = body.indexOf(0)
  if (nul !== body.length - 1) throw protocolError('PG_PROTOCOL_VIOLATION', `${what} message has bytes after its string`)
  return body.toString('utf8', 0, nul)
}

/** The query string of a Parse message (statement name, query, parameter types: only the query is kept). */
export function parseParseMessage(body: Buffer): string {
  const r = new BinaryReader(body, 0, body.length, 'Parse message')
  r.cstring() // statement name: only the unnamed statement is used by clients of the page service
  return r.cstring()
}

// ---- Backend messages -------------------------------------------------------------------------------

/** A typed message with a body of `bodyBytes`, the body written by `fill` at offset 5. */
function message(type: number, bodyBytes: number, fill?: (b: Buffer) => void): Buffer {
  const b = Buffer.allocUnsafe(5 + bodyBytes)
  b[0] = type
  b.writeUInt32BE(4 + bodyBytes, 1)
  fill?.(b)
  return b
}

function stringsMessage(type: number, strings: readonly string[]): Buffer {
  const w = new BinaryWriter(64)
  w.u8(type).u32be(0)
  for (const s of strings) w.cstring(s)
  const b = w.finish()
  b.writeUInt32BE(b.length - 1, 1)
  return b
}

/** The single byte answering SSLRequest / GSSENCRequest: 'N' = not supported, go on in plain text. */
export const ENCRYPTION_REFUSED = Buffer.from('N', 'latin1')

export function authenticationOk(): Buffer {
  return message(BackendType.Authentication, 4, (b) => b.writeUInt32BE(AuthCode.Ok, 5))
}

export function authenticationCleartextPassword(): Buffer {
  return message(BackendType.Authentication, 4, (b) => b.writeUInt32BE(AuthCode.CleartextPassword, 5))
}

/**
 * NegotiateProtocolVersion, as PostgreSQL sends it before authentication when a client asks for a newer
 * minor version of protocol 3 than the server speaks, or for `_pq_.` protocol options it does not know:
 * the newest minor version the server supports, and the options it ignores.
 */
export function negotiateProtocolVersion(newestMinor: number, unrecognizedOptions: readonly string[]): Buffer {
  const w = new BinaryWriter(64)
  w.u8(BackendType.NegotiateProtocolVersion).u32be(0).u32be(newestMinor).u32be(unrecognizedOptions.length)
  for (const o of unrecognizedOptions) w.cstring(o)
  const b = w.finish()
  b.writeUInt32BE(b.length - 1, 1)
  return b
}

/** What a StartupMessage asks for that protocol 3.0 lacks (see negotiateProtocolVersion), or null. */
export function protocolNegotiationNeeded(pkt: { readonly version: number; readonly params: ReadonlyMap<string, string> }): { readonly unrecognizedOptions: string[] } | null {
  const unrecognizedOptions = [...pkt.params.keys()].filter((k) => k.startsWith('_pq_.'))
  return (pkt.version & 0xffff) > 0 || unrecognizedOptions.length > 0 ? { unrecognizedOptions } : null
}

export function parameterStatus(name: string, value: string): Buffer {
  return stringsMessage(BackendType.ParameterStatus, [name, value])
}

export function backendKeyData(processId: number, secretKey: number): Buffer {
  return message(BackendType.BackendKeyData, 8, (b) => {
    b.writeInt32BE(processId, 5)
    b.writeInt32BE(secretKey, 9)
  })
}

/** Transaction status: 'I' idle (the page service never has a transaction). */
export function readyForQuery(status: 'I' | 'T' | 'E' = 'I'): Buffer {
  return message(BackendType.ReadyForQuery, 1, (b) => {
    b[5] = status.charCodeAt(0)
  })
}

export interface ErrorFields {
  /** ERROR, FATAL, PANIC (S and V). */
  readonly severity: 'ERROR' | 'FATAL' | 'PANIC'
  /** SQLSTATE, 5 characters (C). */
  readonly code: string
  readonly message: string
  readonly detail?: string
  readonly hint?: string
}

/** ErrorResponse with S, V, C, M (and D, H when given). */
export function errorResponse(e: ErrorFields): Buffer {
  const w = new BinaryWriter(64 + e.message.length)
  w.u8(BackendType.ErrorResponse).u32be(0)
  w.u8(0x53).cstring(e.severity) // 'S'
  w.u8(0x56).cstring(e.severity) // 'V': not localized
  w.u8(0x43).cstring(e.code) // 'C'
  w.u8(0x4d).cstring(e.message) // 'M'
  if (e.detail !== undefined) w.u8(0x44).cstring(e.detail) // 'D'
  if (e.hint !== undefined) w.u8(0x48).cstring(e.hint) // 'H'
  w.u8(0)
  const b = w.finish()
  b.writeUInt32BE(b.length - 1, 1)
  return b
}

export function commandComplete(tag: string): Buffer {
  return stringsMessage(BackendType.CommandComplete, [tag])
}

/** RowDescription for text columns (type oid 25, format 0). */
export function rowDescriptionText(columns: readonly string[]): Buffer {
  const w = new BinaryWriter(64)
  w.u8(BackendType.RowDescription).u32be(0).u16be(columns.length)
  for (const name of columns) {
    w.cstring(name)
    w.u32be(0) // table oid
    w.u16be(0) // column attribute number
    w.u32be(25) // type oid: text
    w.u16be(0xffff) // typlen -1
    w.i32be(-1) // typmod
    w.u16be(0) // format: text
  }
  const b = w.finish()
  b.writeUInt32BE(b.length - 1, 1)
  return b
}

/** DataRow of text values; null is SQL NULL. */
export function dataRow(values: ReadonlyArray<string | null>): Buffer {
  const w = new BinaryWriter(64)
  w.u8(BackendType.DataRow).u32be(0).u16be(values.length)
  for (const v of values) {
    if (v === null) {
      w.i32be(-1)
    } else {
      const bytes = Buffer.from(v, 'utf8')
      w.u32be(bytes.length).bytes(bytes)
    }
  }
  const b = w.finish()
  b.writeUInt32BE(b.length - 1, 1)
  return b
}

/** CopyBothResponse / CopyOutResponse: overall format 0 (text), 0 columns, as Neon sends them. */
export function copyBothResponse(): Buffer {
  return message(BackendType.CopyBothResponse, 3, (b) => b.fill(0, 5, 8))
}

export function copyOutResponse(): Buffer {
  return message(BackendType.CopyOutResponse, 3, (b) => b.fill(0, 5, 8))
}

/** The 5-byte header of a CopyData message whose payload has `payloadBytes` bytes. */
export function copyDataHeader(payloadBytes: number): Buffer {
  const b = Buffer.allocUnsafe(5)
  b[0] = BackendType.CopyData
  b.writeUInt32BE(4 + payloadBytes, 1)
  return b
}

/** A whole CopyData message (copies the payload once). */
export function copyData(payload: Uint8Array): Buffer {
  return message(BackendType.CopyData, payload.length, (b) => b.set(payload, 5))
}

export function copyDone(): Buffer {
  return message(BackendType.CopyDone, 0)
}

export function parseComplete(): Buffer {
  return message(BackendType.ParseComplete, 0)
}

export function bindComplete(): Buffer {
  return message(BackendType.BindComplete, 0)
}

export function closeComplete(): Buffer {
  return message(BackendType.CloseComplete, 0)
}

export function noData(): Buffer {
  return message(BackendType.NoData, 0)
}

/** ParameterDescription with no parameters. */
export function parameterDescriptionEmpty(): Buffer {
  return message(BackendType.ParameterDescription, 2, (b) => b.writeUInt16BE(0, 5))
}
