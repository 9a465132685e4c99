// `pageserver timeline export` takes the data directory as -D DIR (the contract, as `postgres -D`),
// also --pgdata and -o; its workdir is --workdir or PAGESERVER_WORKDIR only. Through the built CLI, on an
// empty workdir: each form reaches the tenant lookup (exit 3, nothing written), so -D was not read as the
// workdir; and without a data directory the command is a usage error.
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TENANT, TIMELINE } from '../core/layer/helpers.js'
import { runCli } from '../support/cli.js'

describe('timeline export flags', () => {
  let root: string
  let wd: string
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'ps-cli-export-'))
    wd = join(root, 'wd')
    const init = await runCli(['init', '--workdir', wd, '--json'])
    expect(init.code, init.stderr).toBe(0)
  })
  afterAll(async () => {
    await rm(root, { recursive: true, force: true })
  })

  const forms: Array<[string, (dir: string) => string[], (wd: string) => { args: string[]; env: NodeJS.ProcessEnv }]> = [
    ['-D DIR, --workdir', (d) => ['-D', d], (w) => ({ args: ['--workdir', w], env: {} })],
    ['-D DIR, PAGESERVER_WORKDIR', (d) => ['-D', d], (w) => ({ args: [], env: { PAGESERVER_WORKDIR: w } })],
    ['--pgdata DIR', (d) => ['--pgdata', d], (w) => ({ args: ['--workdir', w], env: {} })],
    ['-o DIR', (d) => ['-o', d], (w) => ({ args: ['--workdir', w], env: {} })],
  ]
  it.each(forms)('%s names the data directory', async (_name, dirArgs, wdArgs) => {
    const dir = join(root, 'pgdata')
    const w = wdArgs(wd)
    const r = await runCli(['timeline', 'export', '--tenant', TENANT, '--timeline', TIMELINE, ...dirArgs(dir), ...w.args, '--offline', '--json'], { env: w.env })
    expect(r.code, r.stderr).toBe(3)
    // The message names the workdir it looked in (a forgotten --workdir is the usual cause).
    expect(r.json<{ error: { code: string; message: string } }>().error.message).toBe(`tenant ${TENANT} does not exist in ${wd}`)
    expect(existsSync(dir)).toBe(false)
  })

  it('without a data directory is a usage error', async () => {
    const r = await runCli(['timeline', 'export', '--tenant', TENANT, '--timeline', TIMELINE, '--workdir', wd, '--json'])
    expect(r.code, r.stdout).toBe(2)
  })
})
