import { Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command.js'
import { parseFromFlag, primaryWithDbFlag } from '../../cli/conn-env.js'
import { slotNameFlag } from '../../cli/flags.js'
import { slotDropJson, slotDropText, type SlotDropJson } from '../../cli/slot-inventory-render.js'
import { dropSlotsFrom } from '../../core/app/slot-inventory.js'

export default class SlotDrop extends BaseCommand<typeof SlotDrop> {
  static override summary = 'Drop replication slots on a primary that no timeline of this workdir streams through.'

  static override description = [
    'Drops the slots named with --slot, or with --orphans every inactive slot named pageserver_* whose state is orphan ' +
      '(see `pageserver slot list`), so that the primary can recycle the WAL they keep.',
    '',
    'Each slot is decided on its own (a refusal does not stop the others) and nothing is dropped that a timeline may ' +
      'still need. Refused: a slot a timeline of this workdir owns (SLOT_OWNED: delete the timeline, which drops its ' +
      'slot, or re-point it with `timeline source` instead), a slot whose owner is unknown (SLOT_OWNER_UNKNOWN: a ' +
      'timeline whose metadata cannot be read, or one being created, would use that name; --force drops it anyway), a ' +
      'slot a client streams from (SLOT_ACTIVE), each with exit 4; a slot that does not exist (SLOT_NOT_FOUND, exit 3). ' +
      'The exit code is that of the first refusal, 0 when there is none. With --orphans, the pageserver_* slots left ' +
      '(in use, or owner unknown) are reported as skipped, which is not an error.',
    '',
    'Only this workdir is consulted: a slot that another page server streams through from the same primary is an ' +
      'orphan here; while that page server streams it is in use and is not dropped, but an offline one would lose it. ' +
      'Connects as `slot list` does (replication=database to the dbname of --from).',
    '',
    'With --json: {"server", "systemId", "dryRun", "dropped": [slot...], "refused": [{"slotName", "error": {"code", ' +
      '"message", "hint"}}], "skipped": [slot...]}, each slot as `slot list --json` shows it (in a dry run, "dropped" ' +
      'lists what would be dropped).',
  ].join('\n')

  static override examples = [
    { description: 'The orphans that would be dropped (run it again without --dry-run to drop them).', command: "<%= config.bin %> <%= command.id %> --from 'host=db1 user=replicator' --orphans --dry-run" },
    { description: 'Drop two slots by name.', command: "<%= config.bin %> <%= command.id %> --from 'host=db1 user=replicator' --slot pageserver_0123456789abcdef01234567 --slot pageserver_89abcdef0123456789abcdef" },
    {
      description: 'Drop the slot of a timeline whose metadata is lost, after checking it is not needed.',
      command: "<%= config.bin %> <%= command.id %> --from 'host=db1 user=replicator' --slot pageserver_0123456789abcdef01234567 --force",
    },
  ]

  static override flags = {
    from: primaryWithDbFlag,
    slot: slotNameFlag({ summary: 'A slot to drop (repeatable).', multiple: true, exactlyOne: ['slot', 'orphans'] }),
    orphans: Flags.boolean({ summary: 'Drop every inactive pageserver_* slot that no timeline of this workdir owns.', exactlyOne: ['slot', 'orphans'] }),
    force: Flags.boolean({ summary: 'Also drop named slots whose owner is unknown (never an owned or active one).', default: false }),
    'dry-run': Flags.boolean({ summary: 'Print what would be dropped; drop nothing.', default: false }),
  }

  async run(): Promise<SlotDropJson> {
    const f = this.flags
    const conn = parseFromFlag(f.from, process.env, 'pageserver slot drop', 'dbname')
    const outcome = await dropSlotsFrom(await this.appContext(), {
      conn,
      ...(f.orphans ? { orphans: true } : { slotNames: f.slot ?? [] }),
      force: f.force,
      dryRun: f['dry-run'],
    })
    const json = slotDropJson(outcome)
    if (!this.jsonEnabled()) {
      const text = slotDropText(outcome)
      process.stdout.write(text.stdout)
      process.stderr.write(text.stderr)
    }
    const first = outcome.refused[0]
    if (first === undefined) return json
    // A refusal sets the exit code, and the result is still printed (it says what was dropped).
    if (this.jsonEnabled()) this.logJson(json)
    return this.exit(first.error.exitCode)
  }
}
