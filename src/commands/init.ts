/**
 * `pageserver init`: create the workdir, its `tenants/` directory and a commented default pageserver.toml
 * (with `-c` overrides written in as chosen values). Refuses to replace an existing file without --force.
 */
import { Flags } from '@oclif/core'
import { BaseCommand } from '../cli/base-command.js'
import { initWorkdir } from '../core/config/index.js'

export interface InitResult {
  readonly workdir: string
  readonly configPath: string
  readonly tenantsDir: string
  readonly overwritten: boolean
  readonly chosenKeys: readonly string[]
}

export default class Init extends BaseCommand<typeof Init> {
  static override summary = 'Create a working directory with a commented default pageserver.toml.'

  static override description =
    'Creates the workdir (-D/--workdir, default .neon) and its tenants/ directory, and writes pageserver.toml ' +
    'listing every config key with its documentation and default, commented out. Keys given with -c are ' +
    'validated and written uncommented as chosen values. An existing pageserver.toml is an error (exit 4) ' +
    'unless --force is given; --force is refused (WORKDIR_LOCKED, exit 4) while a process holds the workdir, such as a running ' +
    '`pageserver serve`, which would go on with the settings it loaded. With --json: {workdir, configPath, tenantsDir, overwritten, chosenKeys} ' +
    '(chosenKeys: the keys written uncommented from -c).'

  static override examples = [
    { description: 'Create .neon/ in the current directory.', command: '<%= config.bin %> <%= command.id %>' },
    {
      description: 'Create a workdir that uploads to a local directory and flushes every 64 MiB.',
      command: `<%= config.bin %> <%= command.id %> -D /srv/ps -c "remote_storage={local_path='/srv/remote/'}" -c checkpoint_distance=64MiB`,
    },
    { description: 'Replace an existing config with a fresh default.', command: '<%= config.bin %> <%= command.id %> --force' },
  ]

  static override flags = {
    force: Flags.boolean({ summary: 'Replace an existing pageserver.toml with a fresh one.', default: false }),
  }

  public async run(): Promise<InitResult> {
    const r = await initWorkdir({
      workdir: this.flags.workdir,
      overrides: this.flags.config ?? [],
      env: process.env,
      force: this.flags.force,
    })
    this.log(`${r.overwritten ? 'Replaced' : 'Created'} ${r.configPath}`)
    this.log(`Tenants directory: ${r.tenantsDir}`)
    if (r.chosenKeys.length > 0) this.log(`Chosen with -c: ${r.chosenKeys.join(', ')}`)
    return {
      workdir: r.workdir,
      configPath: r.configPath,
      tenantsDir: r.tenantsDir,
      overwritten: r.overwritten,
      chosenKeys: r.chosenKeys,
    }
  }
}
