// What `slot list` advises after its table and what `slot drop` prints, from results built by hand.
import { describe, expect, it } from 'vitest'
import { slotAdvice, slotDropJson, slotDropText } from '../../src/cli/slot-inventory-render.js'
import type { SlotEntry } from '../../src/core/app/slot-inventory.js'
import { ConflictError } from '../../src/core/lib/errors.js'

const slot = (over: Partial<SlotEntry>): SlotEntry => ({
  slotName: 'pageserver_a',
  active: false,
  activePid: null,
  restartLsn: '0/100',
  retainedBytes: 1024 * 1024 * 1024,
  owner: null,
  state: 'orphan',
  reason: 'no timeline of this workdir streams through it',
  ...over,
})
const owner = { tenantId: 'a'.repeat(32), timelineId: 'b'.repeat(32) }

describe('slotAdvice', () => {
  it('sums the WAL of the orphans --orphans drops, names the others, and never prints a password', () => {
    const text = slotAdvice(
      [
        slot({ slotName: 'pageserver_a' }),
        slot({ slotName: 'pageserver_b', retainedBytes: 512 * 1024 * 1024 }),
        slot({ slotName: 'pageserver_c', active: true, activePid: 7 }),
        slot({ slotName: 'standby', retainedBytes: null }),
        slot({ slotName: 'pageserver_d', state: 'unknown', owner, reason: 'timeline b cannot be read' }),
        slot({ slotName: 'pageserver_e', state: 'owned', owner }),
      ],
      'host=db password=hunter2',
    )
    expect(text).not.toContain('hunter2')
    expect(text.split('\n')).toEqual([
      "2 orphan slots retain 1.5 GiB of WAL: drop them with `pageserver slot drop --from 'host=db password=<redacted>' --orphans`",
      "1 other orphan slot (not named pageserver_*) retains 0 B of WAL: if no other client needs it, drop with `pageserver slot drop --from 'host=db password=<redacted>' --slot standby`",
      '1 orphan slot is in use by a client outside this workdir: pageserver_c',
      "slot pageserver_d may belong to a timeline here: timeline b cannot be read; check it, then `pageserver slot drop --from 'host=db password=<redacted>' --slot pageserver_d --force` drops the slot",
      '',
    ])
    expect(slotAdvice([slot({ state: 'owned', owner })], 'host=db')).toBe('no orphan slots\n')
  })
})

describe('slotDropText and slotDropJson', () => {
  const outcome = {
    server: 'postgres@db:5432',
    systemId: '1',
    dryRun: false,
    dropped: [slot({})],
    refused: [{ slotName: 'pageserver_e', error: new ConflictError('SLOT_OWNED', 'slot pageserver_e belongs to timeline b', { hint: 'Delete the timeline.' }) }],
    skipped: [slot({ slotName: 'pageserver_c', active: true, activePid: 7 })],
  }

  it('says what went on stdout, and what was refused or skipped (with hints) on stderr', () => {
    expect(slotDropText(outcome)).toEqual({
      stdout: 'dropped slot pageserver_a on postgres@db:5432 (retained 1.0 GiB of WAL)\n',
      stderr:
        'pageserver: skipped slot pageserver_c: in use by server process 7\n' +
        'pageserver: slot pageserver_e not dropped: slot pageserver_e belongs to timeline b\nHint: Delete the timeline.\n',
    })
    expect(slotDropText({ ...outcome, dryRun: true, refused: [], skipped: [] }).stdout).toBe('would drop slot pageserver_a on postgres@db:5432 (retains 1.0 GiB of WAL)\n')
    expect(slotDropText({ ...outcome, dropped: [], refused: [], skipped: [] }).stdout).toBe('nothing to drop on postgres@db:5432\n')
  })

  it('gives refusals as {code, message, hint}, the form of every error under --json', () => {
    expect(slotDropJson(outcome).refused).toEqual([{ slotName: 'pageserver_e', error: { code: 'SLOT_OWNED', message: 'slot pageserver_e belongs to timeline b', hint: 'Delete the timeline.' } }])
  })
})
