/**
 * The server process of bench/getpage.ts: everything the clients talk to, in one child process so that
 * servers and clients each get a core on a 2-core machine.
 *
 *   - a loopback echo (bare `net`): reads 47-byte requests, answers each with the same 8,239-byte frame;
 *   - `PageServiceServer` with a backend that answers every GetPage with one fixed page (the protocol floor);
 *   - `PageServer`, what `pageserver serve` runs, on the bench's copy of the cached workdir, its timeline's
 *     WAL source detached first (the primary is gone; the history stays fixed).
 *
 * Started as `node <this file> '<ServeArgs JSON>'`; prints one line of ServerInfo JSON, then answers one
 * line per command read from stdin: `cache off` / `cache on` bypasses the page cache and the layer value
 * cache or uses them again (their contents stay), `pagecache off` / `pagecache on` the page cache alone,
 * `gc` runs a full garbage collection and answers once the process is quiet again, `stats` returns the
 * counters of those and of the timeline's image cache. End of stdin stops every server and exits.
 */
import { createServer, type Socket } from 'node:net'
import { adoptWithReadBuffer, newReadBuffer } from '../../src/core/lib/socket-read-buffer.js'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { collectGarbageAndSettle } from './gc.js'
import { PageServiceServer } from '../../src/core/page-service/server.js'
import type { PageServiceBackend, PageServiceTimeline } from '../../src/core/page-service/backend.js'
import { PageServer } from '../../src/core/app/server.js'
import { withRepository } from '../../src/core/app/context.js'
import { loadConfig } from '../../src/core/config/index.js'
import { relBlockKey } from '../../src/core/datadir/mapping.js'
import { sharedValueCache } from '../../src/core/layer/value-cache.js'
import { sharedPageCache } from '../../src/core/datadir/page-cache.js'
import { formatLsn, lsn, MAX_LSN, parseLsn } from '../../src/core/pg/lsn.js'
import type { RelTag } from '../../src/core/pg/reltag.js'
import { parseTenantId, parseTimelineId, type TenantId, type TimelineId } from '../../src/core/model/ids.js'
import { encodeRequestFrame, encodeResponseFrame, type GetPageRequest } from '../../src/core/protocol/pagestream.js'
import { median } from './stats.js'

export const FIXED_TENANT = '0123456789abcdef0123456789abcdef' as TenantId
export const FIXED_TIMELINE = 'fedcba9876543210fedcba9876543210' as TimelineId
export const FIXED_REL: RelTag = { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0 }
const FIXED_PAGE = Buffer.alloc(8192, 0x5a)
const FIXED_REQ: GetPageRequest = { type: 'getpage', hdr: { reqid: 1n, request_lsn: MAX_LSN, not_modified_since: lsn(0) }, rel: FIXED_REL, blkno: 7 }
export const REQ_FRAME = encodeRequestFrame(FIXED_REQ, 3)
export const RESP_FRAME = encodeResponseFrame({ type: 'getpage', req: FIXED_REQ, page: FIXED_PAGE }, 3)

function fixedPageBackend(): PageServiceBackend {
  const last = lsn(0x1000_0000)
  const timeline: PageServiceTimeline = {
    lastRecordLsn: () => last,
    gcCutoffLsn: () => lsn(0),
    minReadableLsn: () => lsn(0),
    waitForLsn: async () => undefined,
    relExists: async () => true,
    relSize: async () => 1000,
    getPage: () => FIXED_PAGE,
    dbSize: async () => 0n,
    slruSegment: async () => Buffer.alloc(0),
    basebackup: async () => ({ lsn: last, tar: (async function* () {})() }),
  }
  return { timeline: () => timeline }
}

/**
 * Reads 47-byte requests, answers each with the 8,239-byte response frame. Its sockets read into one kept
 * buffer, as the page service's do (`adoptWithReadBuffer`), so the floor pays what the page service pays
 * per read and no more.
 */
function echoServer() {
  const readBuffer = newReadBuffer()
  return createServer({ noDelay: true, pauseOnConnect: true }, (accepted) => {
    let pending = 0
    const socket: Socket = adoptWithReadBuffer(accepted, readBuffer, (chunk) => {
      pending += chunk.length
      while (pending >= REQ_FRAME.length) {
        pending -= REQ_FRAME.length
        socket.write(RESP_FRAME)
      }
    })
    socket.on('error', () => undefined)
    socket.resume()
  })
}

export interface ServeArgs {
  workdir: string
  tenantId: string
  timelineId: string
  importLsn: string
  rels: { img: RelTag; imgPages: number; chain: RelTag; chainPages: number }
}

export interface ServerInfo {
  server: number
  fixed: number
  echo: number
  lastRecordLsn: string
  /** Image pages whose newest version is an image from the import (at or below its LSN) with nothing above it. */
  imgImageHits: number
  /** Records above the newest image, per chain page: min, median, max. */
  chainRecords: { min: number; median: number; max: number; withImage: number }
}

async function serve(args: ServeArgs): Promise<void> {
  const config = await loadConfig({ workdir: args.workdir, overrides: ['listen_pg_addr=127.0.0.1:0', 'listen_http_addr=127.0.0.1:0'], env: {} })
  const ctx = { config, env: process.env }
  const tenantId = parseTenantId(args.tenantId)
  const timelineId = parseTimelineId(args.timelineId)
  // The primary is gone: detach the WAL source so the server serves a fixed history.
  await withRepository(ctx, async (repo) => (await (await repo.tenant(tenantId)).timeline(timelineId)).updateMetadata({ walSource: null }), { lockFor: 'getpage bench' })
  const server = await PageServer.start(ctx)
  const tl = server.service(tenantId, timelineId).timeline
  const end = tl.lastRecordLsn
  const importLsn = parseLsn(args.importLsn)
  let imgImageHits = 0
  for (let b = 0; b < args.rels.imgPages; b++) {
    const h = tl.getKeyHistory(relBlockKey(args.rels.img, b), end)
    if (h.image !== null && h.image.lsn <= importLsn && h.records.length === 0) imgImageHits++
  }
  const counts: number[] = []
  let withImage = 0
  for (let b = 0; b < args.rels.chainPages; b++) {
    const h = tl.getKeyHistory(relBlockKey(args.rels.chain, b), end)
    counts.push(h.records.length)
    if (h.image !== null) withImage++
  }
  counts.sort((a, b) => a - b)
  const fixed = new PageServiceServer(fixedPageBackend(), { connectionsMax: 64 })
  await fixed.listen('127.0.0.1', 0)
  const echo = echoServer()
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
  const info: ServerInfo = {
    server: server.addresses.pg.port,
    fixed: fixed.address.port,
    echo: (echo.address() as { port: number }).port,
    lastRecordLsn: formatLsn(end),
    imgImageHits,
    chainRecords: { min: counts[0]!, median: median(counts), max: counts[counts.length - 1]!, withImage },
  }
  process.stdout.write(JSON.stringify(info) + '\n')
  // Commands from the bench, one per line, each answered with one line (see the module header).
  const lines = createInterface({ input: process.stdin })
  const command = async (line: string): Promise<void> => {
    const [cmd, arg] = line.split(' ')
    if (cmd === 'cache') sharedValueCache.bypass = sharedPageCache.bypass = arg === 'off'
    if (cmd === 'pagecache') sharedPageCache.bypass = arg === 'off'
    if (cmd === 'gc') await collectGarbageAndSettle()
    const counters = (c: { hits: number; misses: number; entries: number; sizeBytes: number; capacityBytes: number }) => ({ hits: c.hits, misses: c.misses, entries: c.entries, bytes: c.sizeBytes, capacityBytes: c.capacityBytes })
    const reply = cmd === 'stats' ? { pageCache: counters(sharedPageCache), valueCache: counters(sharedValueCache), imageCache: tl.imageCacheStats } : { ok: true }
    process.stdout.write(JSON.stringify(reply) + '\n')
  }
  // One command at a time, answered in order (gc waits for the process to settle).
  let queue = Promise.resolve()
  lines.on('line', (line) => {
    queue = queue.then(() => command(line))
  })
  lines.on('close', () => {
    echo.close()
    void Promise.all([fixed.close(), server.stop()]).then(() => process.exit(0))
  })
}


/** This file's path, for spawning it. */
export const SERVER_SCRIPT = fileURLToPath(import.meta.url)

if (process.argv[1] !== undefined && resolve(process.argv[1]) === SERVER_SCRIPT) await serve(JSON.parse(process.argv[2]!) as ServeArgs)
