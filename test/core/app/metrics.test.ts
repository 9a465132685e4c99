// renderMetrics: Prometheus text exposition; every metric has its HELP and TYPE lines, and the read caches'
// hits, lookups and bytes are those of the process-wide page and value caches; the slab pool's resident and
// pooled bytes are its own.
import { describe, expect, it } from 'vitest'
import { renderMetrics } from '../../../src/core/app/metrics.js'
import { sharedPageCache } from '../../../src/core/datadir/page-cache.js'
import { sharedValueCache } from '../../../src/core/layer/value-cache.js'
import type { PageServiceServer } from '../../../src/core/page-service/server.js'
import { newPageServiceMetrics } from '../../../src/core/page-service/metrics.js'
import type { Key } from '../../../src/core/model/key.js'
import { lsn } from '../../../src/core/pg/lsn.js'
import { SlabPool } from '../../../src/core/layer/value-slabs.js'
import type { TimelineService } from '../../../src/core/app/timeline-service.js'
import { RedoProcessBudget } from '../../../src/core/walredo/process-budget.js'

const sample = (text: string, name: string, labels: string): number => {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `))
  if (line === undefined) throw new Error(`no ${name}{${labels}} in:\n${text}`)
  return Number(line.split(' ')[1])
}

describe('renderMetrics', () => {
  it('exposes the connections and the read caches, each metric with HELP and TYPE', () => {
    const counters = { ...newPageServiceMetrics(), connectionsAccepted: 11, connectionsRefused: 2, requestsCompleted: 500, requestErrors: 4, authFailures: 3, protocolErrors: 1, backupsStarted: 6 }
    const pageService = { liveConnections: 3, metrics: counters } as unknown as PageServiceServer
    const before = renderMetrics([], pageService)
    // A page admitted (offered twice) and read once from the page cache.
    const space = sharedPageCache.space({ lastRecordLsn: lsn(0x200), unchangedBetween: () => false })
    const key = '000000067F000000050000400000000000007' as Key
    for (let i = 0; i < 2; i++) sharedPageCache.offer(space, key, lsn(0x100), lsn(0x180), Buffer.alloc(8192, 7))
    expect(sharedPageCache.get(space, key, lsn(0x150))![0]).toBe(7)
    const text = renderMetrics([], pageService)
    sharedPageCache.drop(space)
    expect(sample(text, 'pageserver_page_cache_read_hits_total', 'cache="page"')).toBe(sample(before, 'pageserver_page_cache_read_hits_total', 'cache="page"') + 1)
    expect(sample(text, 'pageserver_page_cache_size_bytes', 'cache="page"')).toBeGreaterThanOrEqual(sample(before, 'pageserver_page_cache_size_bytes', 'cache="page"') + 8192)
    expect(sample(text, 'pageserver_live_connections', 'pageserver_connection_kind="page_service"')).toBe(3)
    // The page service's own counters.
    expect(sample(text, 'pageserver_page_service_connections_total', 'result="accepted"')).toBe(11)
    expect(sample(text, 'pageserver_page_service_connections_total', 'result="refused"')).toBe(2)
    for (const [name, v] of [['requests', 500], ['request_errors', 4], ['auth_failures', 3], ['protocol_errors', 1], ['backups', 6]] as const) {
      const line = text.split('\n').find((l) => l.startsWith(`pageserver_page_service_${name}_total `))
      expect(line, name).toBe(`pageserver_page_service_${name}_total ${v}`)
      expect(text).toContain(`# TYPE pageserver_page_service_${name}_total counter`)
    }
    expect(text).toContain('# TYPE pageserver_wal_ingest_records_received counter')
    // The cache's own counters, as they are now (the page above dropped again).
    const now = renderMetrics([], pageService)
    for (const cache of ['page', 'value'] as const) {
      const c = cache === 'page' ? sharedPageCache : sharedValueCache
      expect(sample(now, 'pageserver_page_cache_read_hits_total', `cache="${cache}"`)).toBe(c.hits)
      expect(sample(now, 'pageserver_page_cache_read_accesses_total', `cache="${cache}"`)).toBe(c.hits + c.misses)
      expect(sample(now, 'pageserver_page_cache_size_bytes', `cache="${cache}"`)).toBe(c.sizeBytes)
      expect(sample(now, 'pageserver_page_cache_capacity_bytes', `cache="${cache}"`)).toBe(c.capacityBytes)
    }
    expect(text).toContain('# TYPE pageserver_page_cache_read_hits_total counter')
    expect(text).toContain('# TYPE pageserver_page_cache_size_bytes gauge')
    // Every sample belongs to a metric announced by HELP and TYPE lines.
    const announced = new Set(text.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]))
    for (const l of text.split('\n').filter((x) => x !== '' && !x.startsWith('#'))) expect(announced.has(l.split(/[{ ]/)[0])).toBe(true)
    expect(text.endsWith('\n')).toBe(true)
  })

  it('sums the redo worker processes of the tenants served, each tenant once', () => {
    const pageService = { liveConnections: 0, metrics: newPageServiceMetrics() } as unknown as PageServiceServer
    const stats = (workers: number, spawned: number, reaped: number, requests: number, failed: number, reclaimed = 0) => ({ workers, spawned, reaped, reclaimed, requests, failed })
    const tenant = (id: string, pools: ReturnType<typeof stats>[]) => ({ id, redoStats: () => pools })
    const service = (t: ReturnType<typeof tenant>, timelineId: string) =>
      ({
        tenant: t,
        timeline: { timelineId, lastRecordLsn: lsn(0x100), diskConsistentLsn: lsn(0x100), layerFiles: () => [], inMemoryBytes: 0 },
        driver: { ingest: { stats: { records: 0 } } },
        walReceiverRetrying: false,
      }) as unknown as TimelineService
    const a = tenant('a'.repeat(32), [stats(2, 5, 3, 100, 1), stats(1, 1, 0, 10, 0)])
    const b = tenant('b'.repeat(32), [stats(1, 2, 1, 7, 2, 1)])
    // Two timelines of tenant a: its pools are counted once.
    const services = [service(a, '1'.repeat(32)), service(a, '2'.repeat(32)), service(b, '3'.repeat(32))]
    const text = renderMetrics(services, pageService)
    const plain = (name: string) => Number(text.split('\n').find((l) => l.startsWith(`${name} `))!.split(' ')[1])
    expect(plain('pageserver_wal_redo_processes')).toBe(4)
    expect(sample(text, 'pageserver_wal_redo_process_events_total', 'event="spawned"')).toBe(8)
    expect(sample(text, 'pageserver_wal_redo_process_events_total', 'event="reaped"')).toBe(4)
    expect(sample(text, 'pageserver_wal_redo_process_events_total', 'event="reclaimed"')).toBe(1)
    // A server's budget keeps the totals of every pool it ever had: counters that never step down when a
    // tenant (and its pools) goes.
    const budget = new RedoProcessBudget(6)
    Object.assign(budget.totals, { spawned: 20, exited: 16, reaped: 9, reclaimed: 3, requests: 500, failed: 4 })
    const withBudget = renderMetrics(services, pageService, { redoBudget: budget })
    const plainOf = (name: string) => Number(withBudget.split('\n').find((l) => l.startsWith(`${name} `))!.split(' ')[1])
    expect(sample(withBudget, 'pageserver_wal_redo_process_events_total', 'event="spawned"')).toBe(20)
    expect(sample(withBudget, 'pageserver_wal_redo_process_events_total', 'event="reclaimed"')).toBe(3)
    expect(sample(withBudget, 'pageserver_wal_redo_process_events_total', 'event="exited"')).toBe(16)
    expect(sample(withBudget, 'pageserver_wal_redo_requests_total', 'result="all"')).toBe(500)
    expect(plainOf('pageserver_wal_redo_processes')).toBe(4) // live processes: still the loaded pools'
    expect(plainOf('pageserver_wal_redo_processes_max')).toBe(6)
    expect(plainOf('pageserver_wal_redo_pools_waiting')).toBe(0)
    expect(sample(text, 'pageserver_wal_redo_requests_total', 'result="all"')).toBe(117)
    expect(sample(text, 'pageserver_wal_redo_requests_total', 'result="failed"')).toBe(3)
  })

  it('exposes the slab memory of the in-memory layers, held and pooled', () => {
    const pageService = { liveConnections: 0, metrics: newPageServiceMetrics() } as unknown as PageServiceServer
    const pool = new SlabPool({ slabBytes: 4096, residentBytesMax: 1 << 20 })
    const slabs = [pool.take(1, null), pool.take(1, null), pool.take(1, null)]
    pool.give(slabs.pop()!)
    const text = renderMetrics([], pageService, { slabs: pool })
    expect(sample(text, 'pageserver_in_memory_slab_bytes', 'state="resident"')).toBe(2 * 4096)
    expect(sample(text, 'pageserver_in_memory_slab_bytes', 'state="pooled"')).toBe(4096)
    expect(renderMetrics([], pageService)).not.toContain('pageserver_in_memory_slab_bytes')
  })

  it('no two metric families share a name as a scraper reads them: a counter "x_total" is family "x" (OpenMetrics)', () => {
    // A gauge "pageserver_wal_redo_processes" beside a counter "pageserver_wal_redo_processes_total" was two
    // families of one name to prometheus_client's parser (and any OpenMetrics consumer): one hid the other.
    const pageService = { liveConnections: 0, metrics: newPageServiceMetrics() } as unknown as PageServiceServer
    const text = renderMetrics([], pageService, { redoBudget: new RedoProcessBudget(4), slabs: new SlabPool({ slabBytes: 4096, residentBytesMax: 1 << 20 }) })
    const families = text
      .split('\n')
      .filter((l) => l.startsWith('# TYPE '))
      .map((l) => {
        const [, , name, type] = l.split(' ') as [string, string, string, string]
        return type === 'counter' ? name.replace(/_total$/, '') : name
      })
    expect(families.filter((f, i) => families.indexOf(f) !== i)).toEqual([])
  })
})
