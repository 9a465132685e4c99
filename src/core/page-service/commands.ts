/**
 * The page service's commands, parsed from a simple-query string as Neon's `PageServiceCmd::parse`
 * (reference section 12): the first word is case-insensitive, arguments are whitespace-separated.
 *
 *   pagestream_v2 <tenant_id> <timeline_id>
 *   pagestream_v3 <tenant_id> <timeline_id>
 *   basebackup <tenant_id> <timeline_id> [<lsn> | latest] [--gzip] [--replica]   (flags in any order, once)
 *   fullbackup <tenant_id> <timeline_id> [<lsn> [<prev_lsn>]]
 *   set ...                                       -> CommandComplete "SELECT 1" (drivers send SET on connect)
 *
 * Anything else is "unsupported command <cmd> in <query>". A command word alone ("set", "basebackup")
 * is "cannot parse query", as in Neon. Error texts are Neon's so logs and tests can be compared.
 * (`lease lsn` is not implemented: LSN leases need the repository's GC side.)
 */
import { UsageError } from '../lib/errors.js'
import { parseLsn, type Lsn } from '../pg/lsn.js'
import { parseTenantId, parseTimelineId, type TenantId, type TimelineId } from '../model/ids.js'
import type { PagestreamVersion } from '../protocol/pagestream.js'

export type PageServiceCommand =
  | { readonly kind: 'set' }
  | { readonly kind: 'pagestream'; readonly version: PagestreamVersion; readonly tenantId: TenantId; readonly timelineId: TimelineId }
  | {
      readonly kind: 'basebackup'
      readonly tenantId: TenantId
      readonly timelineId: TimelineId
      readonly lsn: Lsn | null
      readonly gzip: boolean
      readonly replica: boolean
    }
  | { readonly kind: 'fullbackup'; readonly tenantId: TenantId; readonly timelineId: TimelineId; readonly lsn: Lsn | null; readonly prevLsn: Lsn | null }

export class CommandParseError extends UsageError {
  constructor(message: string) {
    super('PAGE_SERVICE_BAD_COMMAND', message, {
      hint: 'Page service commands: pagestream_v2|pagestream_v3 <tenant> <timeline>, basebackup <tenant> <timeline> [lsn] [--gzip], fullbackup <tenant> <timeline> [lsn [prev_lsn]].',
    })
    this.name = 'CommandParseError'
  }
}

function ids(params: readonly string[]): { tenantId: TenantId; timelineId: TimelineId } {
  let tenantId: TenantId
  let timelineId: TimelineId
  try {
    tenantId = parseTenantId(params[0]!)
  } catch {
    throw new CommandParseError(`Failed to parse tenant id from ${params[0]}`)
  }
  try {
    timelineId = parseTimelineId(params[1]!)
  } catch {
    throw new CommandParseError(`Failed to parse timeline id from ${params[1]}`)
  }
  return { tenantId, timelineId }
}

function lsnParam(text: string, what: string): Lsn {
  // Neon's Lsn::from_str accepts "X/X" only; parseLsn also takes 16 hex digits, which is harmless.
  try {
    return parseLsn(text)
  } catch {
    throw new CommandParseError(`Failed to parse ${what} from ${text}`)
  }
}

export function parseCommand(queryText: string): PageServiceCommand {
  const query = queryText.trim()
  const m = /^(\S+)\s+([\s\S]*)$/.exec(query)
  if (!m) throw new CommandParseError(`cannot parse query: ${query}`)
  const cmd = m[1]!
  const params = m[2]!.split(/\s+/).filter((p) => p !== '')
  switch (cmd.toLowerCase()) {
    case 'pagestream_v2':
    case 'pagestream_v3': {
      if (params.length !== 2) throw new CommandParseError(`invalid number of parameters for pagestream command: ${m[2]}`)
      return { kind: 'pagestream', version: cmd.toLowerCase() === 'pagestream_v2' ? 2 : 3, ...ids(params) }
    }
    case 'basebackup': {
      if (params.length < 2) throw new CommandParseError(`invalid number of parameters for basebackup command: ${m[2]}`)
      const { tenantId, timelineId } = ids(params)
      let lsn: Lsn | null = null
      let flagsFrom = 2
      const maybeLsn = params[2]
      if (maybeLsn !== undefined) {
        if (maybeLsn === 'latest') flagsFrom = 3
        else if (!maybeLsn.startsWith('--')) {
          lsn = lsnParam(maybeLsn, 'lsn')
          flagsFrom = 3
        }
      }
      let gzip = false
      let replica = false
      for (const p of params.slice(flagsFrom)) {
        if (p === '--gzip') {
          if (gzip) throw new CommandParseError(`duplicate parameter for basebackup command: ${p}`)
          gzip = true
        } else if (p === '--replica') {
          if (replica) throw new CommandParseError(`duplicate parameter for basebackup command: ${p}`)
          replica = true
        } else {
          throw new CommandParseError(`invalid parameter for basebackup command: ${p}`)
        }
      }
      return { kind: 'basebackup', tenantId, timelineId, lsn, gzip, replica }
    }
    case 'fullbackup': {
      if (params.length < 2 || params.length > 4) throw new CommandParseError(`invalid number of parameters for basebackup command: ${m[2]}`)
      const { tenantId, timelineId } = ids(params)
      const lsn = params[2] === undefined ? null : lsnParam(params[2], 'Lsn')
      const prevLsn = params[3] === undefined ? null : lsnParam(params[3], 'Lsn')
      return { kind: 'fullbackup', tenantId, timelineId, lsn, prevLsn }
    }
    case 'set':
      return { kind: 'set' }
    default:
      throw new CommandParseError(`unsupported command ${cmd} in ${query}`)
  }
}
