/**
 * The client side of the PostgreSQL v3 protocol that the page service client needs: encoding what a
 * client sends (startup packets, Query, PasswordMessage, CopyData, Terminate) and parsing the few backend
 * messages it must understand (authentication requests, ErrorResponse fields, CommandComplete, DataRow).
 *
 * The mirror of pg-backend-messages.ts; the two are tested against each other and against bytes built by
 * hand. Pure: no sockets. (The replication client uses pg-protocol instead; the page service client owns
 * its framing so that pagestream responses can be matched to requests without an intermediate parser.)
 */
import { BinaryReader } from '../lib/bytes.js'
import { CorruptionError } from '../lib/errors.js'
import { CANCEL_REQUEST_CODE, FrontendType, GSSENC_REQUEST_CODE, PROTOCOL_VERSION_3, SSL_REQUEST_CODE } from './pg-backend-messages.js'

/** A typed frontend message: type byte, length, body. */
export function typed(type: number, body: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(5 + body.length)
  b[0] = type
  b.writeUInt32BE(4 + body.length, 1)
  b.set(body, 5)
  return b
}

/** A NUL-terminated UTF-8 string. */
export function cstr(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.alloc(1)])
}

/** StartupMessage for protocol 3.0 with the given parameters (user is required by PostgreSQL). */
export function startupMessage(params: Readonly<Record<string, string>>): Buffer {
  const parts: Buffer[] = []
  for (const [k, v] of Object.entries(params)) parts.push(cstr(k), cstr(v))
  parts.push(Buffer.alloc(1))
  const body = Buffer.concat(parts)
  const b = Buffer.allocUnsafe(8 + body.length)
  b.writeUInt32BE(8 + body.length, 0)
  b.writeUInt32BE(PROTOCOL_VERSION_3, 4)
  body.copy(b, 8)
  return b
}

function codeOnly(code: number): Buffer {
  const b = Buffer.allocUnsafe(8)
  b.writeUInt32BE(8, 0)
  b.writeUInt32BE(code, 4)
  return b
}

export function sslRequest(): Buffer {
  return codeOnly(SSL_REQUEST_CODE)
}

export function gssEncRequest(): Buffer {
  return codeOnly(GSSENC_REQUEST_CODE)
}

export function cancelRequest(processId: number, secretKey: number): Buffer {
  const b = Buffer.allocUnsafe(16)
  b.writeUInt32BE(16, 0)
  b.writeUInt32BE(CANCEL_REQUEST_CODE, 4)
  b.writeInt32BE(processId, 8)
  b.writeInt32BE(secretKey, 12)
  return b
}

export function query(sql: string): Buffer {
  return typed(FrontendType.Query, cstr(sql))
}

export function passwordMessage(password: string): Buffer {
  return typed(FrontendType.Password, cstr(password))
}

export function copyDataMessage(payload: Uint8Array): Buffer {
  return typed(FrontendType.CopyData, payload)
}

export function copyDoneMessage(): Buffer {
  return typed(FrontendType.CopyDone, Buffer.alloc(0))
}

export function copyFailMessage(reason: string): Buffer {
  return typed(FrontendType.CopyFail, cstr(reason))
}

export function syncMessage(): Buffer {
  return typed(FrontendType.Sync, Buffer.alloc(0))
}

export function terminateMessage(): Buffer {
  return typed(FrontendType.Terminate, Buffer.alloc(0))
}

// ---- Parsing backend messages -------------------------------------------------------------------------

export interface PgErrorFields {
  readonly severity: string
  /** SQLSTATE */
  readonly code: string
  readonly message: string
  readonly detail: string | undefined
  readonly hint: string | undefined
}

/** ErrorResponse / NoticeResponse body: (field type u8, string)*, then 0. */
export function parseErrorFields(body: Buffer): PgErrorFields {
  const r = new BinaryReader(body, 0, body.length, 'ErrorResponse')
  const fields = new Map<string, string>()
  for (;;) {
    const t = r.u8()
    if (t === 0) break
    fields.set(String.fromCharCode(t), r.cstring())
  }
  return {
    severity: fields.get('V') ?? fields.get('S') ?? 'ERROR',
    code: fields.get('C') ?? 'XX000',
    message: fields.get('M') ?? '(no message)',
    detail: fields.get('D'),
    hint: fields.get('H'),
  }
}

/** The request code of an AuthenticationRequest ('R') body. */
export function parseAuthCode(body: Buffer): number {
  if (body.length < 4) throw new CorruptionError('PG_PROTOCOL_VIOLATION', 'the server sent a truncated authentication request', { hint: 'Check that host and port point to a page server.' })
  return body.readUInt32BE(0)
}

/** CommandComplete tag, ParameterStatus pair, and other string-bodied messages. */
export function parseCStrings(body: Buffer, what: string): string[] {
  const r = new BinaryReader(body, 0, body.length, what)
  const out: string[] = []
  while (r.remaining > 0) out.push(r.cstring())
  return out
}

/** DataRow body: column count u16, then per column i32 length (-1 = NULL) and bytes. */
export function parseDataRow(body: Buffer): Array<string | null> {
  const r = new BinaryReader(body, 0, body.length, 'DataRow')
  const n = r.u16be()
  const out: Array<string | null> = []
  for (let i = 0; i < n; i++) {
    const len = r.i32be()
    out.push(len < 0 ? null : r.bytes(len).toString('utf8'))
  }
  return out
}
