/**
 * Prometheus text exposition of the running server (GET /metrics): progress LSNs and layer counts per
 * timeline, in-memory bytes, records ingested, whether the WAL receiver is retrying; the page service (live
 * connections; connections, requests, in-band errors, refused logins, protocol errors and backups since
 * start); the read caches (the page cache of served pages, the value cache of layer values: hits, lookups,
 * bytes); the WAL redo worker processes; the slab memory of the in-memory layers (held by layers, and free
 * in the pool). Names follow Neon's where one exists (pageserver_last_record_lsn, ...).
 */
import { sharedPageCache } from '../datadir/page-cache.js'
import { sharedValueCache } from '../layer/value-cache.js'
import type { PageServiceServer } from '../page-service/server.js'
import type { TimelineService } from './timeline-service.js'
import type { SlabPool } from '../layer/value-slabs.js'
import type { RedoProcessBudget } from '../walredo/process-budget.js'

/** What the server adds beyond its timelines and page service. */
export interface MetricsExtras {
  /** Timelines that failed to load at start. */
  brokenTimelines?: number
  /** Tenants whose timelines could not be listed at start. */
  brokenTenants?: number
  slabs?: SlabPool
  redoBudget?: RedoProcessBudget
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')
}

export function renderMetrics(services: TimelineService[], pageService: PageServiceServer, extras: MetricsExtras = {}): string {
  const { brokenTimelines = 0, brokenTenants = 0, slabs, redoBudget } = extras
  const lines: string[] = []
  const metric = (type: 'gauge' | 'counter', name: string, help: string, rows: Array<[Record<string, string>, number | bigint]>) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    for (const [labels, v] of rows) {
      const l = Object.entries(labels)
        .map(([k, x]) => `${k}="${esc(x)}"`)
        .join(',')
      lines.push(`${name}${l ? `{${l}}` : ''} ${v.toString()}`)
    }
  }
  const gauge = (name: string, help: string, rows: Array<[Record<string, string>, number | bigint]>) => metric('gauge', name, help, rows)
  const counter = (name: string, help: string, rows: Array<[Record<string, string>, number | bigint]>) => metric('counter', name, help, rows)
  const tsl = (s: TimelineService) => ({ tenant_id: s.tenant.id, timeline_id: s.timeline.timelineId })
  gauge('pageserver_last_record_lsn', 'End LSN of the last ingested WAL record.', services.map((s) => [tsl(s), s.timeline.lastRecordLsn]))
  gauge('pageserver_disk_consistent_lsn', 'Everything up to this LSN is in layer files.', services.map((s) => [tsl(s), s.timeline.diskConsistentLsn]))
  gauge('pageserver_layer_count', 'Layer files of the timeline.', services.map((s) => [tsl(s), s.timeline.layerFiles().length]))
  gauge('pageserver_timeline_ephemeral_bytes', 'Bytes held by in-memory layers.', services.map((s) => [tsl(s), s.timeline.inMemoryBytes]))
  gauge('pageserver_broken_timelines', 'Timelines that failed to load at start and are not served (see the log, or timeline list).', [[{}, brokenTimelines]])
  gauge('pageserver_broken_tenants', 'Tenants whose directory could not be read at start: none of their timelines is served (see the log).', [[{}, brokenTenants]])
  gauge('pageserver_wal_receiver_retrying', 'Whether the WAL receiver is retrying after a failure (1): the source unreachable or refusing, the disk full, ... (timeline status says why).', services.map((s) => [tsl(s), s.walReceiverRetrying ? 1 : 0]))
  counter('pageserver_wal_ingest_records_received', 'WAL records ingested since start.', services.map((s) => [tsl(s), s.driver.ingest.stats.records]))
  gauge('pageserver_live_connections', 'Open page service connections.', [[{ pageserver_connection_kind: 'page_service' }, pageService.liveConnections]])
  const m = pageService.metrics
  counter('pageserver_page_service_connections_total', 'Page service connections accepted, refused at the connection limit, and closed while still logging in to make room at it.', [
    [{ result: 'accepted' }, m.connectionsAccepted],
    [{ result: 'refused' }, m.connectionsRefused],
    [{ result: 'evicted_while_logging_in' }, m.handshakesEvicted],
  ])
  counter('pageserver_page_service_requests_total', 'Pagestream requests answered (in-band errors included).', [[{}, m.requestsCompleted]])
  counter('pageserver_page_service_request_errors_total', 'Pagestream requests answered with an in-band error.', [[{}, m.requestErrors]])
  counter('pageserver_page_service_auth_failures_total', 'Logins refused (bad or foreign token, wrong method).', [[{}, m.authFailures]])
  counter('pageserver_page_service_protocol_errors_total', 'Connections ended for a protocol violation.', [[{}, m.protocolErrors]])
  counter('pageserver_page_service_backups_total', 'basebackup and fullbackup commands that started streaming.', [[{}, m.backupsStarted]])
  const caches = [
    [{ cache: 'page' }, sharedPageCache],
    [{ cache: 'value' }, sharedValueCache],
  ] as const
  counter('pageserver_page_cache_read_hits_total', 'Reads answered by the cache (page: served pages, images and redo results; value: layer values and index blocks).', caches.map(([l, c]) => [l, c.hits]))
  counter('pageserver_page_cache_read_accesses_total', 'Reads that asked the cache.', caches.map(([l, c]) => [l, c.hits + c.misses]))
  gauge('pageserver_page_cache_size_bytes', 'Bytes the cache holds.', caches.map(([l, c]) => [l, c.sizeBytes]))
  gauge('pageserver_page_cache_capacity_bytes', 'Bytes the cache may hold (page_cache_size, half each).', caches.map(([l, c]) => [l, c.capacityBytes]))
  // Redo worker processes of every tenant served (each tenant has its own pools): a count an operator sizes
  // memory by (a worker is a Node process).
  const tenants = new Map(services.map((s) => [s.tenant.id, s.tenant]))
  const redo = [...tenants.values()].flatMap((t) => t.redoStats())
  const sum = (f: (x: (typeof redo)[number]) => number): number => redo.reduce((n, x) => n + f(x), 0)
  gauge('pageserver_wal_redo_processes', 'Live WAL redo worker processes, all tenants together.', [[{}, sum((x) => x.workers)]])
  // Counters from the server's budget, which every pool reports to: sums over the tenants loaded now would
  // step down when one is deleted, which Prometheus reads as a reset.
  // Not "pageserver_wal_redo_processes_total": OpenMetrics readers (prometheus_client's parser, collectors that
  // drop a counter's _total) take that for family "pageserver_wal_redo_processes", the gauge above.
  const totals = redoBudget?.totals ?? {
    spawned: sum((x) => x.spawned),
    exited: sum((x) => x.spawned - x.workers),
    reaped: sum((x) => x.reaped),
    reclaimed: sum((x) => x.reclaimed),
    requests: sum((x) => x.requests),
    failed: sum((x) => x.failed),
  }
  counter('pageserver_wal_redo_process_events_total', 'WAL redo worker processes since the server started: started; ended for any reason (spawned minus exited are alive, or being stopped); of those, reaped after wal_redo_idle_timeout and stopped to make room for another tenant at wal_redo_max_processes.', [
    [{ event: 'spawned' }, totals.spawned],
    [{ event: 'exited' }, totals.exited],
    [{ event: 'reaped' }, totals.reaped],
    [{ event: 'reclaimed' }, totals.reclaimed],
  ])
  if (redoBudget !== undefined) {
    const b = redoBudget.stats()
    gauge('pageserver_wal_redo_processes_max', 'wal_redo_max_processes: the cap on WAL redo worker processes, all tenants together.', [[{}, b.max]])
    gauge('pageserver_wal_redo_pools_waiting', 'Tenants with redo requests and no worker, waiting for one at wal_redo_max_processes.', [[{}, b.waiting]])
  }
  counter('pageserver_wal_redo_requests_total', 'WAL redo requests since the server started, and those that failed.', [
    [{ result: 'all' }, totals.requests],
    [{ result: 'failed' }, totals.failed],
  ])
  if (slabs !== undefined) {
    gauge('pageserver_in_memory_slab_bytes', 'Slab memory of the in-memory layers: held by layers (resident), free in the pool for reuse (pooled; given back after a minute unused).', [
      [{ state: 'resident' }, slabs.residentBytes],
      [{ state: 'pooled' }, slabs.pooledBytes],
    ])
  }
  return lines.join('\n') + '\n'
}
