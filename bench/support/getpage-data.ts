/**
 * Cached data for the GetPage benchmarks that go through the server (bench/getpage.ts): one timeline
 * holding two tables whose pages cost differently to serve.
 *
 *   img_t    created, filled and frozen (VACUUM FREEZE, so no later hint-bit writes) BEFORE the import:
 *            its pages are values of the import's image layer; nothing after the import touches it.
 *            A GetPage of it is an "image hit": three key lookups and a copy, no redo.
 *   chain_t  created AFTER the import (fillfactor 10: one 500-byte row per page), VACUUM, CHECKPOINT,
 *            then CHAIN_ROUNDS rounds of `UPDATE chain_t SET n = n + 1`: the first round logs a full-page
 *            image of every page, each later round a HOT-update and a prune record (the page is above its
 *            fillfactor). At the end LSN each page is that image plus 2 x (CHAIN_ROUNDS - 1) records in the
 *            L0 layers: a GetPage of it needs redo.
 * The primary's data directory is kept (stopped), so a stock PostgreSQL can be started on a copy of it and
 * serve the very same pages with get_raw_page; pageinspect is created before the import.
 */
import { ensureIngestData, type IngestData } from './ingest-data.js'

/** img_t: rows of ~530 bytes, 15 per page. */
export const IMAGE_PAGES = 2000
/** chain_t: one row per page. */
export const CHAIN_PAGES = 1000
/** Update rounds on chain_t: a full-page image, then 2 x (CHAIN_ROUNDS - 1) records above it. */
export const CHAIN_ROUNDS = 11

export interface GetpageFacts {
  dbNode: number
  imgRelNode: number
  imgPages: number
  chainRelNode: number
  chainPages: number
}

export async function ensureGetpageData(): Promise<IngestData & { facts: GetpageFacts }> {
  const data = await ensureIngestData({
    name: 'getpage-server',
    version: `v1-i${IMAGE_PAGES}-c${CHAIN_PAGES}-r${CHAIN_ROUNDS}`,
    keepPrimary: true,
    ingest: true,
    prepare: async (pg) => {
      await pg.sql(`CREATE EXTENSION pageinspect;
        CREATE TABLE img_t (id int NOT NULL, n int NOT NULL, pad text NOT NULL) WITH (autovacuum_enabled = off);
        INSERT INTO img_t SELECT g, 0, repeat('y', 500) FROM generate_series(1, ${IMAGE_PAGES * 15}) g;
        VACUUM FREEZE img_t;
        CHECKPOINT;`)
    },
    workload: async (pg, log) => {
      await pg.sql(`CREATE TABLE chain_t (id int NOT NULL, n int NOT NULL, pad text NOT NULL) WITH (fillfactor = 10, autovacuum_enabled = off);
        INSERT INTO chain_t SELECT g, 0, repeat('x', 500) FROM generate_series(1, ${CHAIN_PAGES}) g;
        VACUUM chain_t;
        CHECKPOINT;`)
      log(`${CHAIN_ROUNDS} update rounds`)
      await pg.sql(Array.from({ length: CHAIN_ROUNDS }, () => 'UPDATE chain_t SET n = n + 1;').join('\n'))
      const q = async (sql: string) => Number(await pg.sql(sql))
      return {
        dbNode: await q("SELECT oid FROM pg_database WHERE datname = 'postgres'"),
        imgRelNode: await q("SELECT pg_relation_filenode('img_t')"),
        imgPages: await q("SELECT pg_relation_size('img_t') / 8192"),
        chainRelNode: await q("SELECT pg_relation_filenode('chain_t')"),
        chainPages: await q("SELECT pg_relation_size('chain_t') / 8192"),
      }
    },
  })
  return { ...data, facts: data.info.facts as unknown as GetpageFacts }
}
