// The committed man pages (man/*.1) must equal a fresh generation from oclif.manifest.json, which
// `npm run build` writes from the command classes: a changed flag or summary without a rebuild fails here.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../support/cli.js'

describe('man pages', () => {
  it('are up to date with the commands', () => {
    const r = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'gen-man.js'), '--check'], { cwd: REPO_ROOT, encoding: 'utf8' })
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/^\d+ man pages up to date/)
  })

  it('include init and config show', () => {
    const r = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'gen-man.js'), '--check'], { cwd: REPO_ROOT, encoding: 'utf8' })
    expect(Number(/^(\d+)/.exec(r.stdout)?.[1])).toBeGreaterThanOrEqual(3)
  })
})
