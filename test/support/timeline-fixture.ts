/**
 * Fixtures for tests that build timelines by hand: temporary directories removed after each test, and the
 * metadata of an empty root timeline at 0/100.
 */
import { afterEach } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TimelineMetadata } from '../../src/core/repository/metadata.js'
import { lsn } from '../../src/core/pg/lsn.js'

/** Options for Timeline.create/load in tests: no fsync, a short wait for WAL. */
export const TEST_TIMELINE_OPTS = { noSync: true, waitLsnTimeoutMs: 2000 }

/**
 * Returns a function making a fresh temporary directory named `prefix`…; every directory made is removed
 * after each test. Call at the top level of a test file.
 */
export function tempDirs(prefix: string): () => string {
  const dirs: string[] = []
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  })
  return () => {
    const d = mkdtempSync(join(tmpdir(), prefix))
    dirs.push(d)
    return d
  }
}

/** Metadata of an empty root timeline whose WAL starts at 0/100, with `over` applied. */
export function testTimelineMetadata(over: Partial<TimelineMetadata> = {}): TimelineMetadata {
  return {
    diskConsistentLsn: lsn(0x100),
    prevRecordLsn: null,
    lastRecordLsn: lsn(0x100),
    ancestorTimeline: null,
    ancestorLsn: null,
    latestGcCutoffLsn: lsn(0),
    initdbLsn: lsn(0x100),
    pgVersion: 15,
    walSource: null,
    dataChecksums: false,
    hintBitsLogged: false,
    minReadableLsn: lsn(0x100),
    createdAt: 0,
    ...over,
  }
}
