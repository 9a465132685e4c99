/**
 * `pageserver getpage --server HOST:PORT ...`: read one page from a running page server over pagestream,
 * as a compute would. The `getpage` command (offline path) calls `getPageFromServer` when `--server` is
 * given and renders the result; this module parses the address, connects, asks Nblocks and GetPage in
 * one pipelined round trip, and closes.
 *
 * LSNs: without `--lsn` the request is "latest" (request_lsn = Lsn.MAX, not_modified_since = 0, so the
 * server reads at its last record LSN without waiting); with `--lsn X` both are X (the server waits for X
 * if it has not arrived, up to its wait_lsn_timeout). `notModifiedSince` may lower the second.
 */
import { UsageError } from '../core/lib/errors.js'
import { formatHostPort } from '../core/lib/host-port.js'
import { formatLsn, INVALID_LSN, MAX_LSN, type Lsn } from '../core/pg/lsn.js'
import { forkName, formatRelFileNode, type RelFileNode, type RelTag } from '../core/pg/reltag.js'
import type { TenantId, TimelineId } from '../core/model/ids.js'
import { PageServiceClient } from '../core/page-service/client.js'
import { splitHostPort, type HostPort } from '../core/lib/host-port.js'

export interface GetPageServerFlags {
  /** "HOST:PORT", "[v6addr]:PORT" */
  readonly server: string
  readonly tenant: TenantId
  readonly timeline: TimelineId
  readonly rel: RelFileNode
  readonly fork: number
  readonly block: number
  /** Read as of this LSN; absent = latest. */
  readonly lsn?: Lsn
  /** Defaults to `lsn` (or 0 for latest). */
  readonly notModifiedSince?: Lsn
  /** JWT for a page server with NeonJWT auth (the command may default it from NEON_AUTH_TOKEN). */
  readonly token?: string
  /** Pagestream protocol version (default 3). */
  readonly protocol?: 2 | 3
  readonly connectTimeoutMs?: number
}

export interface GetPageServerResult {
  readonly server: string
  readonly tenantId: TenantId
  readonly timelineId: TimelineId
  /** "1663/5/16384", whatever the fork; the fork is `fork`. */
  readonly rel: string
  readonly fork: string
  readonly block: number
  /** "latest" or "X/X" */
  readonly requestLsn: string
  readonly notModifiedSince: string
  /** Size of the relation fork at the same LSN. */
  readonly nblocks: number
  /** The block is at or past the end: the server sent an all-zero page. */
  readonly pastEnd: boolean
  readonly page: Buffer
}

/** A page service address, host:port or [v6]:port (lib/host-port.ts, as the lock file records it); port 0 refused. */
export function parseServerAddress(text: string): HostPort {
  const hp = splitHostPort(text)
  if (hp === null || hp.port < 1) {
    throw new UsageError('BAD_SERVER_ADDRESS', `--server: "${text}" is not HOST:PORT`, {
      hint: 'Give the page service address as host:port, e.g. 127.0.0.1:64000 (listen_pg_addr), or [::1]:64000.',
    })
  }
  return hp
}

export async function getPageFromServer(flags: GetPageServerFlags): Promise<GetPageServerResult> {
  const { host, port } = parseServerAddress(flags.server)
  const rel: RelTag = { ...flags.rel, forkNum: flags.fork }
  const requestLsn = flags.lsn ?? MAX_LSN
  const notModifiedSince = flags.notModifiedSince ?? flags.lsn ?? INVALID_LSN
  if (notModifiedSince > requestLsn) {
    throw new UsageError('BAD_LSN_RANGE', `--not-modified-since ${formatLsn(notModifiedSince)} is after --lsn ${formatLsn(requestLsn)}`, {
      hint: 'not_modified_since must be at or before the request LSN.',
    })
  }
  const client = await PageServiceClient.connect({
    host,
    port,
    ...(flags.token === undefined ? {} : { token: flags.token }),
    applicationName: 'pageserver getpage',
    ...(flags.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: flags.connectTimeoutMs }),
  })
  try {
    const stream = await client.pagestream(flags.tenant, flags.timeline, { version: flags.protocol ?? 3 })
    const lsns = { requestLsn, notModifiedSince }
    // Both requests go out together; responses come back in order.
    const [nblocks, page] = await Promise.all([stream.nblocks(rel, lsns), stream.getPage(rel, flags.block, lsns)])
    return {
      server: formatHostPort(host, port),
      tenantId: flags.tenant,
      timelineId: flags.timeline,
      rel: formatRelFileNode(rel),
      fork: forkName(rel.forkNum),
      block: flags.block,
      requestLsn: flags.lsn === undefined ? 'latest' : formatLsn(requestLsn),
      notModifiedSince: formatLsn(notModifiedSince),
      nblocks,
      pastEnd: flags.block >= nblocks,
      page: Buffer.from(page),
    }
  } finally {
    await client.close()
  }
}
