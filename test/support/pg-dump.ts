/**
 * pg_dump comparisons for tests that start stock PostgreSQL on exports: the dump of the primary recorded at
 * an LSN must equal the dump of an export at that LSN. Sequences are compared by PostgreSQL's WAL-ahead rule
 * (nextval logs SEQ_LOG_VALS ahead, so a server started from WAL may be up to 32 values ahead), everything
 * else exactly.
 */
import { expect } from 'vitest'
import type { PgCluster } from './pg-cluster.js'
import { runPgTool } from '../../src/core/postgres/install.js'

/** SEQ_LOG_VALS in sequence.c: how far ahead of the returned value nextval logs. */
export const SEQ_LOG_VALS = 32
export const RESTRICT_KEY = 'pageserverexporttest'


export async function dump(pg: PgCluster, db: string): Promise<string> {
  const r = await runPgTool(pg.inst, 'pg_dump', ['-h', pg.socketDir, '-p', String(pg.port), '-U', 'postgres', '--restrict-key', RESTRICT_KEY, '--exclude-table-data=unlogged_t', '-d', db], {
    timeoutMs: 120_000,
  })
  return r.stdout
}

export async function dumpGlobals(pg: PgCluster): Promise<string> {
  const r = await runPgTool(pg.inst, 'pg_dumpall', ['-h', pg.socketDir, '-p', String(pg.port), '-U', 'postgres', '--restrict-key', RESTRICT_KEY, '--globals-only'], { timeoutMs: 60_000 })
  return r.stdout
}

export const SETVAL_RE = /^SELECT pg_catalog\.setval\('([^']+)', (\d+), (true|false)\);$/gm

/** Checks the setval values of `got` against `want` (the WAL-ahead rule) and returns both with them masked. */
export function compareSequences(want: string, got: string, where: string): [string, string] {
  const values = (text: string) => new Map([...text.matchAll(SETVAL_RE)].map((m) => [m[1]!, { value: Number(m[2]), called: m[3] }]))
  const w = values(want)
  const g = values(got)
  expect([...g.keys()].sort(), `sequences ${where}`).toEqual([...w.keys()].sort())
  for (const [name, pv] of w) {
    const ev = g.get(name)!
    expect(ev.value, `${name} ${where}`).toBeGreaterThanOrEqual(pv.value)
    expect(ev.value, `${name} ${where}`).toBeLessThanOrEqual(pv.value + SEQ_LOG_VALS)
  }
  const mask = (text: string) => text.replace(SETVAL_RE, "SELECT pg_catalog.setval('$1', N, B);")
  return [mask(want), mask(got)]
}

/** The first differing line of two texts, with its number, for a readable failure. */
export function firstDifference(a: string, b: string): string {
  const la = a.split('\n')
  const lb = b.split('\n')
  for (let i = 0; i < Math.max(la.length, lb.length); i++) {
    if (la[i] !== lb[i]) return `line ${i + 1}: primary ${JSON.stringify(la[i])}, export ${JSON.stringify(lb[i])}`
  }
  return 'none'
}

