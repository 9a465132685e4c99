import { Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command.js'
import { parseFromFlag, primaryWithDbFlag } from '../../cli/conn-env.js'
import { slotListText } from '../../cli/slot-inventory-render.js'
import { listSlots, type SlotInventory } from '../../core/app/slot-inventory.js'

export default class SlotList extends BaseCommand<typeof SlotList> {
  static override summary = "List a primary's physical replication slots, the WAL each keeps, and the timeline of this workdir that owns it."

  static override description = [
    'A slot keeps WAL on the primary until it is dropped. A timeline that streams from the primary holds one ' +
      '(named pageserver_<first 24 hex digits of the timeline id> unless --slot chose another), and some paths leave one ' +
      'that no timeline names any more: an import killed midway (the next import from that primary, or the next ' +
      '`serve`, drops it), a timeline re-pointed to another primary ' +
      '(`timeline source`), a timeline deleted while its primary was down or its metadata unreadable. This command ' +
      'finds them.',
    '',
    'For each slot: whether a client streams from it (and the server pid), its restart_lsn, the WAL it retains ' +
      "(the primary's current WAL position minus restart_lsn), and its state: owned (a timeline of this workdir streams " +
      'through it from this cluster: same slot name and system identifier), orphan (none does), or unknown (a timeline ' +
      'whose metadata cannot be read, or one being created, would use this name). Only this workdir is consulted: a ' +
      "slot another page server's workdir streams through from the same primary is an orphan here. The workdir is " +
      'read without its lock, so a running `serve` may keep it. Listed are our slots (named pageserver_*, owned or ' +
      'maybe owned by a timeline here, or recorded by an import that did not finish); --all lists every slot.',
    '',
    'The listing runs SQL on a logical-walsender connection (replication=database) to the dbname of --from: ' +
      'pg_hba.conf must allow that database for the user (not only "replication"), and the role needs REPLICATION. ' +
      'Unset parts of --from come from PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE.',
    '',
    'With --json: {"server": "user@host:port", "systemId", "slots": [{"slotName", "active", "activePid", "restartLsn", ' +
      '"retainedBytes", "owner": {"tenantId", "timelineId"} | null, "state": "owned"|"orphan"|"unknown", "reason"}]} ' +
      '(owner is the timeline that owns the slot, or may own it when unknown).',
  ].join('\n')

  static override examples = [
    { description: 'The page server slots of a primary, and which are orphans.', command: "<%= config.bin %> <%= command.id %> --from 'host=db1 user=replicator password=secret'" },
    { description: 'Every physical slot (standbys and other tools too), as JSON.', command: '<%= config.bin %> <%= command.id %> --from postgresql://postgres@127.0.0.1:5432/postgres --all --json' },
  ]

  static override flags = {
    from: primaryWithDbFlag,
    all: Flags.boolean({ summary: 'List every physical slot, not only ours (named pageserver_*, used by a timeline here, or recorded by an import).', default: false }),
  }

  async run(): Promise<SlotInventory> {
    const conn = parseFromFlag(this.flags.from, process.env, 'pageserver slot list', 'dbname')
    const inv = await listSlots(await this.appContext(), { conn, all: this.flags.all })
    if (!this.jsonEnabled()) process.stdout.write(await slotListText(inv, this.flags.from))
    return inv
  }
}
