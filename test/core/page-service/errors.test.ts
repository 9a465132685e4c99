/**
 * Typed errors across the page service: an error the backend raises while serving a client (a basebackup
 * or fullbackup, a refused pagestream, a GetPage) reaches the client with the kind, code, exit code and hint
 * it has offline. Also the wire helpers on their own (error-wire.ts), and clients of old-style servers
 * (Neon's, or ours before codes were sent): their errors map as before.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import {
  ConflictError,
  CorruptionError,
  InterruptedError,
  NotFoundError,
  PageserverError,
  TimeoutError,
  UnavailableError,
  UnsupportedError,
  UsageError,
  type ErrorKind,
} from '../../../src/core/lib/errors.js'
import { PageServiceClient } from '../../../src/core/page-service/client.js'
import { PagestreamRequestError, PageServiceServerError } from '../../../src/core/page-service/client-errors.js'
import {
  detailWithCode,
  kindOfSqlstate,
  pagestreamErrorMessage,
  splitDetail,
  splitPagestreamMessage,
  SQLSTATE_OF_KIND,
} from '../../../src/core/page-service/error-wire.js'
import { FrameReader } from '../../../src/core/protocol/pg-frames.js'
import { authenticationOk, copyBothResponse, errorResponse, parseCString, readyForQuery } from '../../../src/core/protocol/pg-backend-messages.js'
import { decodeRequest, encodeResponseFrame } from '../../../src/core/protocol/pagestream.js'
import { lsn } from '../../../src/core/pg/lsn.js'
import type { TenantId, TimelineId } from '../../../src/core/model/ids.js'
import { REL, TENANT, TIMELINE } from './fake-backend.js'
import { startServer, type Running } from './support.js'

const REDO_HINT =
  'Pages touched by this record cannot be rebuilt at or after this LSN until a later full-page image. ' +
  "For index types without redo, set wal_consistency_checking on the primary for them (e.g. 'hash,gin,gist,spgist,brin,generic')."

/** One typed error of each kind, as the repository raises them; fresh each call (a test may throw it). */
function typedErrors(): PageserverError[] {
  return [
    new UsageError('LSN_BEFORE_START', 'LSN 0/10 is before the first readable LSN 0/1000 of this timeline', { hint: 'Ask for a later LSN.' }),
    new NotFoundError('RELATION_NOT_FOUND', 'relation 1663/5/4242 does not exist at 0/16B3748', {
      hint: 'Check the relation (pg_relation_filepath) and the LSN; the relation may not exist yet or may have been dropped.',
    }),
    new ConflictError('TIMELINE_BUSY', 'the timeline is being detached', { hint: 'Retry once the detach is done.' }),
    new CorruptionError('LAYER_CORRUPT', 'layer file /x/y is corrupt: value fails its checksum (offset 8192)', { hint: 'Restore the layer from remote storage.' }),
    new UnavailableError('REDO_PROCESS_FAILED', 'the redo process exited (signal SIGKILL)', { hint: 'See the page server log.' }),
    new TimeoutError('REDO_TIMEOUT', 'redo did not answer within 60000 ms', { hint: 'The host may be overloaded.' }),
    new InterruptedError('REDO_INTERRUPTED', 'redo was interrupted', { hint: 'Run it again.' }),
    new UnsupportedError('REDO_UNSUPPORTED_RECORD', 'cannot redo Gin/INSERT record ending at 0/16B3748 on 1663/5/16390 main blk 1: no redo for this record type', {
      hint: REDO_HINT,
    }),
    new PageserverError('internal', 'ASSERTION_FAILED', 'page LSN went backwards', { hint: 'This is a bug in pageserver; please report it.' }),
  ]
}

/** What must survive the trip: what the CLI prints and exits with. */
function offline(e: PageserverError): { kind: ErrorKind; code: string; exitCode: number; hint: string | undefined } {
  return { kind: e.kind, code: e.code, exitCode: e.exitCode, hint: e.hint }
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of it) parts.push(Buffer.from(c))
  return Buffer.concat(parts)
}

describe('error-wire helpers', () => {
  it('every kind has its own SQLSTATE and maps back to it; XX000 alone is left to the caller', () => {
    const states = Object.values(SQLSTATE_OF_KIND)
    expect(new Set(states).size).toBe(states.length)
    for (const [kind, state] of Object.entries(SQLSTATE_OF_KIND)) {
      expect(kindOfSqlstate(state), kind).toBe(kind === 'internal' ? null : kind)
    }
    // Codes other servers and our fatal paths send: unchanged meaning.
    expect(['57P01', '08006', '53300', '08P01'].map(kindOfSqlstate)).toEqual(['unavailable', 'unavailable', 'unavailable', 'unavailable'])
    expect(kindOfSqlstate('XX001')).toBe('corruption')
    expect(kindOfSqlstate('3D000')).toBe('not_found')
    expect(kindOfSqlstate('42601')).toBe('usage')
    expect(kindOfSqlstate('ZZ999')).toBeNull()
  })

  it('the code line in D: after the detail text, and read back only when it is a whole last line', () => {
    expect(detailWithCode('RELATION_NOT_FOUND')).toBe('pageserver error code: RELATION_NOT_FOUND')
    expect(splitDetail('pageserver error code: RELATION_NOT_FOUND')).toEqual({ code: 'RELATION_NOT_FOUND', detail: undefined })
    expect(splitDetail(detailWithCode('TIMELINE_BROKEN', 'loaded 3 of 4 layers\nthen failed'))).toEqual({ code: 'TIMELINE_BROKEN', detail: 'loaded 3 of 4 layers\nthen failed' })
    for (const d of [undefined, 'token expired', 'see pageserver error code: X', 'pageserver error code: not a code', 'pageserver error code: A B']) {
      expect(splitDetail(d), String(d)).toEqual({ code: null, detail: d })
    }
  })

  it('the in-band trailer: code and hint back, the message as sent before it (parentheses in hint or message kept)', () => {
    for (const e of typedErrors()) {
      const wire = pagestreamErrorMessage(e)
      expect(wire.includes('\0')).toBe(false)
      const back = splitPagestreamMessage(wire)
      expect(back.code).toBe(e.code)
      expect(back.hint).toBe(e.hint)
      expect(back.message.endsWith(e.message)).toBe(true)
    }
    const noHint = splitPagestreamMessage(pagestreamErrorMessage(new NotFoundError('SLRU_SEGMENT_NOT_FOUND', 'no segment 0003 (pg_xact)')))
    expect(noHint).toEqual({ message: 'Read error: not found: no segment 0003 (pg_xact)', code: 'SLRU_SEGMENT_NOT_FOUND', hint: null })
    // Neon's messages have no trailer, parentheses or not.
    for (const m of ['Read error: could not find data for key 000000067F (at LSN 0/1)', 'Bad request: invalid SLRU kind', 'Read error: x (pageserver error code: lower)']) {
      expect(splitPagestreamMessage(m)).toEqual({ message: m, code: null, hint: null })
    }
  })
})

describe('typed errors through the page service', () => {
  let r: Running | null = null
  afterEach(async () => {
    await r?.stop()
    r = null
  })

  it('a fullbackup failing during the stream: kind, code, exit code and hint as offline (the GIN redo case); the connection stays usable', async () => {
    r = await startServer()
    const tl = r.backend.main
    const c = await r.client()
    for (const e of typedErrors()) {
      tl.failBackupsMidway(() => e)
      const err = await collect(c.basebackup(TENANT, TIMELINE, { full: true })).catch((x: unknown) => x)
      expect(err, e.kind).toBeInstanceOf(PageServiceServerError)
      expect(offline(err as PageserverError), e.kind).toEqual(offline(e))
      expect((err as PageServiceServerError).sqlstate).toBe(SQLSTATE_OF_KIND[e.kind])
      expect((err as Error).message).toBe(`fullbackup failed: ${e.message}`)
      expect((err as PageServiceServerError).detail).toBeUndefined()
    }
    expect((await c.simpleQuery('set x')).commandTag).toBe('SELECT 1')
  })

  it('a basebackup refused before the stream, and errors without a hint: the client fills in one', async () => {
    r = await startServer()
    const tl = r.backend.main
    const c = await r.client()
    for (const e of typedErrors()) {
      tl.basebackup = () => Promise.reject(e)
      const err = await collect(c.basebackup(TENANT, TIMELINE)).catch((x: unknown) => x)
      expect(offline(err as PageserverError), e.kind).toEqual(offline(e))
    }
    tl.basebackup = () => Promise.reject(new NotFoundError('SLRU_SEGMENT_NOT_FOUND', 'no pg_xact segment 0000'))
    const err = await collect(c.basebackup(TENANT, TIMELINE)).catch((x: unknown) => x)
    expect(err).toMatchObject({ kind: 'not_found', code: 'SLRU_SEGMENT_NOT_FOUND', exitCode: 3 })
    expect((err as PageserverError).hint).toMatch(/\S/)
  })

  it('an untyped failure of a backup is internal (exit 1), as the CLI reports one offline', async () => {
    r = await startServer()
    const tl = r.backend.main
    tl.basebackup = () => Promise.reject(new Error('EIO: i/o error, read'))
    const c = await r.client()
    const err = await collect(c.basebackup(TENANT, TIMELINE, { full: true })).catch((x: unknown) => x)
    expect(err).toMatchObject({ kind: 'internal', code: 'INTERNAL', exitCode: 1, sqlstate: 'XX000', message: 'fullbackup refused: EIO: i/o error, read' })
  })

  it("the backup's own refusals: an LSN below the GC cutoff (usage), an LSN that does not arrive (timeout)", async () => {
    r = await startServer({ waitLsnTimeoutMs: 50 })
    const tl = r.backend.main
    tl.last = lsn(0x4000)
    tl.gcCutoff = lsn(0x2000)
    const c = await r.client()
    const gc = await collect(c.basebackup(TENANT, TIMELINE, { lsn: lsn(0x1000) })).catch((x: unknown) => x)
    expect(gc).toMatchObject({ kind: 'usage', code: 'BACKUP_LSN_BEFORE_GC_CUTOFF', exitCode: 2, sqlstate: '22023' })
    expect((gc as PageserverError).hint).toContain('0/2000')
    const late = await collect(c.basebackup(TENANT, TIMELINE, { lsn: lsn(0x9000) })).catch((x: unknown) => x)
    expect(late).toMatchObject({ kind: 'timeout', code: 'PAGE_SERVICE_LSN_TIMEOUT', exitCode: 7, sqlstate: '57014' })
  })

  it('a pagestream refused at command start (a timeline that failed to load): kind, code and hint as raised', async () => {
    r = await startServer()
    const backend = r.backend
    const serve = backend.timeline.bind(backend)
    let refusal: PageserverError | null = null
    backend.timeline = (t: TenantId, tl: TimelineId) => {
      if (refusal !== null) throw refusal
      return serve(t, tl)
    }
    const c = await r.client()
    for (const e of typedErrors()) {
      refusal = e
      const err = await c.pagestream(TENANT, TIMELINE).catch((x: unknown) => x)
      expect(err, e.kind).toBeInstanceOf(PageServiceServerError)
      expect(offline(err as PageserverError), e.kind).toEqual(offline(e))
    }
    refusal = null
    // Neon's text for an unknown timeline is kept, with the backend's code.
    const missing = await c.pagestream(TENANT, '77777777777777777777777777777777' as TimelineId).catch((x: unknown) => x)
    expect(missing).toMatchObject({ kind: 'not_found', code: 'TIMELINE_NOT_FOUND', exitCode: 3, sqlstate: '42704' })
    expect((missing as Error).message).toMatch(/: Not found: timeline /)
  })

  for (const version of [2, 3] as const) {
    it(`GetPage (v${version}): each kind in-band, with Neon's class prefix, code and hint; the stream goes on`, async () => {
      r = await startServer()
      const tl = r.backend.main
      const s = await (await r.client()).pagestream(TENANT, TIMELINE, { version })
      for (const e of typedErrors()) {
        tl.failNextRead = e
        const err = await s.getPage(REL, 1).catch((x: unknown) => x)
        expect(err, e.kind).toBeInstanceOf(PagestreamRequestError)
        expect(offline(err as PageserverError), e.kind).toEqual(offline(e))
        const message = (err as Error).message
        expect(message.endsWith(e.message), message).toBe(true)
        expect(message).toMatch(e.kind === 'usage' ? /^Bad request: / : /^Read error: /)
        expect(message).not.toContain('pageserver error code')
      }
      expect((await s.getPage(REL, 2)).length).toBe(8192)
      // A refused request is not a failed read: the server's log hears of the others only.
      expect(tl.readFailures).toHaveLength(typedErrors().length - 1)
      // The missing relation of `getpage --server`: not found, as offline, not an outage.
      tl.failNextRead = typedErrors()[1]!
      await expect(s.nblocks({ ...REL, relNode: 4242 })).rejects.toMatchObject({ kind: 'not_found', code: 'RELATION_NOT_FOUND', exitCode: 3, errorClass: 'not_found' })
    })
  }
})

describe('clients of an old-style server (no codes sent) map as before', () => {
  let server: Server | null = null
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
    server = null
  })

  /**
   * A Neon-like page server: trust login; a query whose text is in `refusals` gets ErrorResponse XX000 with
   * only a message, pagestream gets CopyBoth, and each pagestream request an Error (103) with the next text
   * of `inBand`.
   */
  async function neonLike(refusals: Record<string, string>, inBand: string[]): Promise<number> {
    const sockets = new Set<Socket>()
    server = createServer((socket) => {
      sockets.add(socket)
      socket.on('error', () => undefined)
      const reader = new FrameReader({ messageBytesMax: 1 << 20, peer: 'client' })
      reader.expectStartup = true
      socket.on('data', (chunk: Buffer) => {
        reader.push(chunk)
        for (let f = reader.next(); f !== null; f = reader.next()) {
          if (f.type === 0) {
            reader.expectStartup = false
            socket.write(Buffer.concat([authenticationOk(), readyForQuery()]))
          } else if (f.type === 0x51) {
            const sql = parseCString(f.body, 'Query')
            const verb = sql.split(' ')[0]!
            if (verb.startsWith('pagestream')) socket.write(copyBothResponse())
            else socket.write(Buffer.concat([errorResponse({ severity: 'ERROR', code: 'XX000', message: refusals[verb] ?? `unsupported command ${verb}` }), readyForQuery()]))
          } else if (f.type === 0x64) {
            const req = decodeRequest(f.body, 3)
            socket.write(encodeResponseFrame({ type: 'error', hdr: req.hdr, message: inBand.shift() ?? 'Read error: nothing scripted' }, 3))
          }
        }
      })
    })
    server.on('close', () => sockets.forEach((x) => x.destroy()))
    const close = server.close.bind(server)
    server.close = ((cb?: (err?: Error) => void) => {
      sockets.forEach((x) => x.destroy())
      return close(cb)
    }) as typeof server.close
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
    return (server.address() as { port: number }).port
  }

  it('ErrorResponse XX000 without a code line: kind from the text, PAGE_SERVICE_* codes and hints', async () => {
    const port = await neonLike(
      {
        basebackup: `Not found: tenant ${TENANT} not found`,
        fullbackup: 'Timed out while waiting for WAL record at LSN 0/9000 to arrive',
        foo: 'unsupported command foo in foo bar',
      },
      [],
    )
    const c = await PageServiceClient.connect({ host: '127.0.0.1', port })
    try {
      const nf = await collect(c.basebackup(TENANT, TIMELINE)).catch((x: unknown) => x)
      expect(nf).toMatchObject({ kind: 'not_found', code: 'PAGE_SERVICE_NOT_FOUND', exitCode: 3, sqlstate: 'XX000' })
      expect((nf as PageserverError).hint).toBe('Check the tenant and timeline ids (pageserver tenant list, timeline list).')
      const late = await collect(c.basebackup(TENANT, TIMELINE, { full: true })).catch((x: unknown) => x)
      expect(late).toMatchObject({ kind: 'timeout', code: 'PAGE_SERVICE_LSN_TIMEOUT', exitCode: 7 })
      const refused = await c.simpleQuery('foo bar').catch((x: unknown) => x)
      expect(refused).toMatchObject({ kind: 'usage', code: 'PAGE_SERVICE_REFUSED', exitCode: 2, hint: 'Check the command and its arguments.' })
    } finally {
      c.destroy()
    }
  })

  it("in-band errors without a trailer: Neon's classes, PAGESTREAM_<CLASS> codes", async () => {
    const port = await neonLike({}, [
      'Read error: could not find data for key 000000067F00000005000040000000000001 at LSN 0/1 (request LSN 0/2)',
      'Bad request: tried to request a page version that was garbage collected. requested at 0/1 gc cutoff 0/2',
      'Read error: data corrupted: layer file /x is corrupt',
      'Not found: timeline is not active',
    ])
    const c = await PageServiceClient.connect({ host: '127.0.0.1', port })
    try {
      const s = await c.pagestream(TENANT, TIMELINE)
      const results = await Promise.allSettled([s.getPage(REL, 1), s.getPage(REL, 2), s.getPage(REL, 3), s.getPage(REL, 4)])
      const reasons = results.map((x) => (x as PromiseRejectedResult).reason as PagestreamRequestError)
      expect(reasons.map((e) => [e.kind, e.code, e.errorClass])).toEqual([
        ['unavailable', 'PAGESTREAM_READ', 'read'],
        ['usage', 'PAGESTREAM_BAD_REQUEST', 'bad_request'],
        ['corruption', 'PAGESTREAM_DATA_CORRUPTED', 'data_corrupted'],
        ['not_found', 'PAGESTREAM_NOT_FOUND', 'not_found'],
      ])
      expect(reasons[0]!.message).toBe('Read error: could not find data for key 000000067F00000005000040000000000001 at LSN 0/1 (request LSN 0/2)')
      expect(reasons[0]!.hint).toBe('See the page server log for the cause.')
    } finally {
      c.destroy()
    }
  })
})
