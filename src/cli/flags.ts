/**
 * Flag types that parse at the edge: commands receive Lsn, TenantId, RelFileNode, never raw strings.
 */
import { Flags } from '@oclif/core'
import { parseLsn, type Lsn } from '../core/pg/lsn.js'
import { parseTenantId, parseTimelineId, type TenantId, type TimelineId } from '../core/model/ids.js'
import { parseBlockNumber, parseForkName, parseRelFileNode, type RelFileNode } from '../core/pg/reltag.js'
import { validateSlotName } from '../core/walreceiver/replication-commands.js'

export const lsnFlag = Flags.custom<Lsn>({
  parse: async (input) => parseLsn(input),
  helpValue: 'X/X',
})

export const tenantIdFlag = Flags.custom<TenantId>({
  parse: async (input) => parseTenantId(input),
  helpValue: 'TENANT_ID',
})

export const timelineIdFlag = Flags.custom<TimelineId>({
  parse: async (input) => parseTimelineId(input),
  helpValue: 'TIMELINE_ID',
})

export const relFlag = Flags.custom<RelFileNode>({
  parse: async (input) => parseRelFileNode(input),
  helpValue: 'SPC/DB/REL',
})

export const forkFlag = Flags.custom<number>({
  parse: async (input) => parseForkName(input),
  helpValue: 'main|fsm|vm|init',
  options: ['main', 'fsm', 'vm', 'init'],
})

export const blockFlag = Flags.custom<number>({
  parse: async (input) => parseBlockNumber(input),
  helpValue: 'N',
})

/** A replication slot name as PostgreSQL allows it (lower-case letters, digits, underscores; at most 63). */
export const slotNameFlag = Flags.custom<string>({
  parse: async (input) => {
    validateSlotName(input)
    return input
  },
  helpValue: 'NAME',
})
