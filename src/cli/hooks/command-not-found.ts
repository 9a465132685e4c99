/**
 * oclif's `command_not_found` hook (package.json oclif.hooks): an unknown command is a usage error like any
 * other, shown the way BaseCommand shows errors, since no command class runs to do it: with `--json` as
 * `{"error": {"code": "UNKNOWN_COMMAND", "message", "hint"}}` on stdout, else `Error:`/`Hint:` on stderr;
 * exit 2. Commands are named as typed, with spaces (`tenant nosuch`), not oclif's ids (`tenant:nosuch`).
 */
import type { Hook } from '@oclif/core'
import { closestKey } from '../../core/config/suggest.js'
import { UsageError } from '../../core/lib/errors.js'
import { toUserFacing } from '../errors.js'
import { jsonReplacer } from '../stdout-sink.js'

const hook: Hook.CommandNotFound = async function (opts) {
  const { config } = opts
  const spaced = (id: string): string => id.split(':').join(config.topicSeparator)
  const bin = config.bin
  const argv = opts.argv ?? []
  const flagsEnd = argv.indexOf('--')
  const json = (flagsEnd < 0 ? argv : argv.slice(0, flagsEnd)).includes('--json')

  // `tenant nosuch`: help for the topic; `timline list`: the closest command; else the list of commands.
  const [topicName] = opts.id.split(':')
  const topic = opts.id.includes(':') && topicName !== undefined ? config.findTopic(topicName) : undefined
  const guess = closestKey(opts.id, config.commandIDs)
  const hint =
    guess !== null
      ? `Did you mean \`${bin} ${spaced(guess)}\`? \`${bin} --help\` lists the commands.`
      : topic
        ? `\`${bin} ${spaced(topic.name)} --help\` lists its commands.`
        : `\`${bin} --help\` lists the commands.`
  const e = toUserFacing(new UsageError('UNKNOWN_COMMAND', `unknown command "${spaced(opts.id)}"`, { hint }))

  if (json) {
    process.stdout.write(JSON.stringify({ error: { code: e.code, message: e.message, hint: e.hint ?? null } }, jsonReplacer, 2) + '\n')
  } else {
    process.stderr.write(`Error: ${e.message}\nHint: ${e.hint}\n`)
  }
  // Exiting drops what a pipe has not taken yet.
  await Promise.all([process.stdout, process.stderr].map((s) => new Promise<void>((resolve) => s.write('', () => resolve()))))
  this.exit(e.exitCode)
}

export default hook
