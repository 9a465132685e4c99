/**
 * Command parsing as Neon's PageServiceCmd::parse (its own unit tests, pageservice_cmd_parse, mirrored):
 * case-insensitive first word, whitespace-separated arguments, basebackup flags in any order, Neon's
 * error texts.
 */
import { describe, expect, it } from 'vitest'
import { parseCommand } from '../../../src/core/page-service/commands.js'
import { TENANT, TIMELINE } from './fake-backend.js'

describe('parseCommand', () => {
  it('pagestream_v2 / pagestream_v3, any case, extra whitespace', () => {
    expect(parseCommand(`pagestream_v2 ${TENANT} ${TIMELINE}`)).toEqual({ kind: 'pagestream', version: 2, tenantId: TENANT, timelineId: TIMELINE })
    expect(parseCommand(`  PAGESTREAM_V3\t${TENANT.toUpperCase()}   ${TIMELINE}  `)).toEqual({ kind: 'pagestream', version: 3, tenantId: TENANT, timelineId: TIMELINE })
  })

  it('basebackup with optional lsn or `latest` and flags in any order', () => {
    const base = { kind: 'basebackup', tenantId: TENANT, timelineId: TIMELINE }
    expect(parseCommand(`basebackup ${TENANT} ${TIMELINE}`)).toEqual({ ...base, lsn: null, gzip: false, replica: false })
    expect(parseCommand(`basebackup ${TENANT} ${TIMELINE} 0/16B3748`)).toEqual({ ...base, lsn: 0x16b3748n, gzip: false, replica: false })
    expect(parseCommand(`basebackup ${TENANT} ${TIMELINE} latest --replica`)).toEqual({ ...base, lsn: null, gzip: false, replica: true })
    expect(parseCommand(`basebackup ${TENANT} ${TIMELINE} --replica --gzip`)).toEqual({ ...base, lsn: null, gzip: true, replica: true })
    expect(parseCommand(`basebackup ${TENANT} ${TIMELINE} 1/0 --gzip`)).toEqual({ ...base, lsn: 0x100000000n, gzip: true, replica: false })
  })

  it('fullbackup with optional lsn and prev_lsn', () => {
    expect(parseCommand(`fullbackup ${TENANT} ${TIMELINE}`)).toEqual({ kind: 'fullbackup', tenantId: TENANT, timelineId: TIMELINE, lsn: null, prevLsn: null })
    expect(parseCommand(`fullbackup ${TENANT} ${TIMELINE} 0/2000 0/1F00`)).toEqual({ kind: 'fullbackup', tenantId: TENANT, timelineId: TIMELINE, lsn: 0x2000n, prevLsn: 0x1f00n })
  })

  it('set anything', () => {
    expect(parseCommand("SET datestyle TO 'ISO'")).toEqual({ kind: 'set' })
  })

  it("refuses with Neon's messages", () => {
    const cases: Array<[string, string]> = [
      ['set', 'cannot parse query: set'],
      ['', 'cannot parse query: '],
      ['select 1', 'unsupported command select in select 1'],
      ['lease lsn a b c', 'unsupported command lease in lease lsn a b c'],
      [`pagestream_v2 ${TENANT}`, `invalid number of parameters for pagestream command: ${TENANT}`],
      [`pagestream_v2 ${TENANT} ${TIMELINE} x`, `invalid number of parameters for pagestream command: ${TENANT} ${TIMELINE} x`],
      [`pagestream_v2 xyz ${TIMELINE}`, 'Failed to parse tenant id from xyz'],
      [`pagestream_v2 ${TENANT} 123`, 'Failed to parse timeline id from 123'],
      [`basebackup ${TENANT}`, `invalid number of parameters for basebackup command: ${TENANT}`],
      [`basebackup ${TENANT} ${TIMELINE} --gzip --gzip`, 'duplicate parameter for basebackup command: --gzip'],
      [`basebackup ${TENANT} ${TIMELINE} --replica --replica`, 'duplicate parameter for basebackup command: --replica'],
      [`basebackup ${TENANT} ${TIMELINE} 0/1 0/2`, 'invalid parameter for basebackup command: 0/2'],
      [`basebackup ${TENANT} ${TIMELINE} nope`, 'Failed to parse lsn from nope'],
      [`fullbackup ${TENANT} ${TIMELINE} 0/1 0/2 0/3`, `invalid number of parameters for basebackup command: ${TENANT} ${TIMELINE} 0/1 0/2 0/3`],
      [`fullbackup ${TENANT} ${TIMELINE} 0/1 x`, 'Failed to parse Lsn from x'],
    ]
    for (const [q, msg] of cases) expect(() => parseCommand(q), q).toThrow(msg)
  })
})
