/**
 * Text rendering of a page summary (src/core/redo/page-summary.ts) for terminals: the header line, special
 * space, and the line-pointer array as aligned columns. Shared by `getpage` and `redo replay`.
 */
import { summaryHeaderLine, type PageSummary } from '../core/redo/page-summary.js'

export function renderPageSummary(p: PageSummary): string {
  let s = summaryHeaderLine(p) + '\n'
  if (p.btree) {
    const b = p.btree
    s += `btree opaque: prev ${b.btpo_prev}  next ${b.btpo_next}  level ${b.btpo_level}  flags 0x${b.btpo_flags.toString(16).padStart(4, '0')} ${b.flags.join('|')}  cycleid ${b.btpo_cycleid}\n`
  }
  if (p.vm) s += `visibility map: ${p.vm.allVisible} heap blocks all-visible, ${p.vm.allFrozen} all-frozen\n`
  if (p.fsm) s += `free space map: most free space category ${p.fsm.maxCategory} of 255, ${p.fsm.leavesWithSpace} of ${p.fsm.leaves} slots with space, next slot ${p.fsm.nextSlot}\n`
  for (const problem of p.problems) s += `problem: ${problem}\n`
  s += `line pointers: ${p.linePointers.length}\n`
  if (p.linePointers.length > 0) s += renderLinePointers(p)
  return s
}

export function renderLinePointers(p: PageSummary): string {
  const hex = (v: number): string => '0x' + v.toString(16).toUpperCase().padStart(4, '0')
  if (p.kind === 'heap') {
    return columns(
      ['OFF', 'LP_OFF', 'FLAGS', 'LP_LEN', 'XMIN', 'XMAX', 'INFOMASK', 'INFOMASK2', 'CTID'],
      p.linePointers.map((lp) => [
        lp.offnum,
        lp.lp_off,
        lp.lp_flags,
        lp.lp_len,
        lp.tuple?.t_xmin ?? '',
        lp.tuple?.t_xmax ?? '',
        lp.tuple ? hex(lp.tuple.t_infomask) : '',
        lp.tuple ? hex(lp.tuple.t_infomask2) : '',
        lp.tuple?.t_ctid ?? '',
      ]),
    )
  }
  return columns(['OFF', 'LP_OFF', 'FLAGS', 'LP_LEN'], p.linePointers.map((lp) => [lp.offnum, lp.lp_off, lp.lp_flags, lp.lp_len]))
}

/**
 * Left-aligned columns separated by two spaces, one line per row (a chain or a line-pointer array can have
 * hundreds of rows: a boxed table would triple the lines).
 */
export function columns(head: string[], rows: Array<Array<string | number>>): string {
  const cells = [head, ...rows.map((r) => r.map(String))]
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)))
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n'
}
