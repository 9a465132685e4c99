/**
 * Relation tags and block numbers: how PostgreSQL names a page.
 *
 * `RelTag` = tablespace oid, database oid, relfilenode, fork. Text form "spc/db/rel" (as pg_waldump prints
 * `rel 1663/5/16384`), fork by name (`main`, `fsm`, `vm`, `init`). BlockNumber is a u32;
 * 0xFFFFFFFF (InvalidBlockNumber) is never a real block.
 */
import { UsageError } from '../lib/errors.js'

export const ForkNumber = { Main: 0, Fsm: 1, VisibilityMap: 2, Init: 3 } as const

export type ForkName = 'main' | 'fsm' | 'vm' | 'init'

export const FORK_NAMES: readonly ForkName[] = ['main', 'fsm', 'vm', 'init']
export const MAX_FORK_NUMBER = 3

export type BlockNumber = number
export const INVALID_BLOCK_NUMBER = 0xffff_ffff
/** Well-known tablespaces; Neon supports only these two. */
export const DEFAULTTABLESPACE_OID = 1663
export const GLOBALTABLESPACE_OID = 1664

/** PostgreSQL's RelFileNode (spcNode, dbNode, relNode): a relation's files, without the fork. */
export interface RelFileNode {
  readonly spcNode: number
  readonly dbNode: number
  readonly relNode: number
}

export interface RelTag extends RelFileNode {
  readonly forkNum: number
}

export function forkName(forkNum: number): string {
  return FORK_NAMES[forkNum] ?? `fork${forkNum}`
}

export function parseForkName(text: string): number {
  const i = FORK_NAMES.indexOf(text.trim().toLowerCase() as ForkName)
  if (i < 0) {
    throw new UsageError('BAD_FORK', `"${text}" is not a fork name`, { hint: 'Use one of: main, fsm, vm, init.' })
  }
  return i
}

/** "1663/5/16384" -> RelFileNode. */
export function parseRelFileNode(text: string): RelFileNode {
  const m = /^\s*(\d+)\/(\d+)\/(\d+)\s*$/.exec(text)
  const parts = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : []
  if (!m || parts.some((p) => p > 0xffff_ffff)) {
    throw new UsageError('BAD_REL', `"${text}" is not a relation (spc/db/rel)`, {
      hint: 'Write a relation as tablespace/database/relfilenode oids, e.g. 1663/5/16384 (see pg_relation_filepath()).',
    })
  }
  return { spcNode: parts[0]!, dbNode: parts[1]!, relNode: parts[2]! }
}

export function formatRelFileNode(r: RelFileNode): string {
  return `${r.spcNode}/${r.dbNode}/${r.relNode}`
}

/** "1663/5/16384" for the main fork, "1663/5/16384_vm" otherwise (PostgreSQL's file suffix). */
export function formatRelTag(r: RelTag): string {
  return r.forkNum === 0 ? formatRelFileNode(r) : `${formatRelFileNode(r)}_${forkName(r.forkNum)}`
}

export function parseBlockNumber(text: string, what = 'block'): BlockNumber {
  const s = text.trim()
  if (!/^\d+$/.test(s) || Number(s) >= INVALID_BLOCK_NUMBER) {
    throw new UsageError('BAD_BLOCK', `${what}: "${text}" is not a block number`, {
      hint: 'A block number is an integer from 0 to 4294967294.',
    })
  }
  return Number(s)
}

export function relTagEquals(a: RelTag, b: RelTag): boolean {
  return a.spcNode === b.spcNode && a.dbNode === b.dbNode && a.relNode === b.relNode && a.forkNum === b.forkNum
}

/** One page of one relation fork: what redo reconstructs and what the walredo pipe protocol names. */
export interface BufferTag extends RelTag {
  readonly blkno: BlockNumber
}

export function formatBufferTag(t: BufferTag): string {
  return `${formatRelTag(t)} blk ${t.blkno}`
}
