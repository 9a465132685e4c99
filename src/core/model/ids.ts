/**
 * TenantId and TimelineId: 16 random bytes, written as 32 lower-case hex characters (Neon's form).
 * Branded strings: a TimelineId cannot be passed where a TenantId is expected.
 */
import { randomBytes } from 'node:crypto'
import { UsageError } from '../lib/errors.js'

export type TenantId = string & { readonly __brand: 'TenantId' }
export type TimelineId = string & { readonly __brand: 'TimelineId' }

const ID_RE = /^[0-9a-f]{32}$/

function parseId(text: string, what: string): string {
  const s = text.trim().toLowerCase()
  if (!ID_RE.test(s)) {
    throw new UsageError('BAD_ID', `${what}: "${text}" is not a ${what.toLowerCase()} (32 hex characters)`, {
      hint: 'Ids are 32 hexadecimal characters, as printed by `pageserver tenant list` or `timeline list`.',
    })
  }
  return s
}

export function parseTenantId(text: string): TenantId {
  return parseId(text, 'Tenant id') as TenantId
}

export function parseTimelineId(text: string): TimelineId {
  return parseId(text, 'Timeline id') as TimelineId
}

export function generateTenantId(): TenantId {
  return randomBytes(16).toString('hex') as TenantId
}

export function generateTimelineId(): TimelineId {
  return randomBytes(16).toString('hex') as TimelineId
}

/** The 16 raw bytes of an id (for binary formats). */
export function idToBytes(id: TenantId | TimelineId): Buffer {
  return Buffer.from(id, 'hex')
}

export function tenantIdFromBytes(b: Uint8Array): TenantId {
  return parseTenantId(Buffer.from(b).toString('hex'))
}

export function timelineIdFromBytes(b: Uint8Array): TimelineId {
  return parseTimelineId(Buffer.from(b).toString('hex'))
}
