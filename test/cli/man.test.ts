// The committed man pages (man/*.1) must equal a fresh generation from oclif.manifest.json, which
// `npm run build` writes from the command classes: a changed flag or summary without a rebuild fails here.
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../support/cli.js'
import { EXIT_CODES } from '../../src/core/lib/errors.js'

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

  it('list exactly the exit codes the CLI uses, as the README does', () => {
    const codes = [0, ...new Set(Object.values(EXIT_CODES))].sort((a, b) => a - b)
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8')
    const readmeLine = /\*\*Exit codes\*\*:([^]*?)\n\n/.exec(readme)?.[1] ?? ''
    for (const c of codes) expect(readmeLine, `README exit code ${c}`).toMatch(new RegExp(`(^|[\\s,])${c} `))
    const pages = readdirSync(join(REPO_ROOT, 'man')).filter((f) => f.endsWith('.1'))
    expect(pages.length).toBeGreaterThan(10)
    for (const f of pages) {
      const text = readFileSync(join(REPO_ROOT, 'man', f), 'utf8')
      const section = text.slice(text.indexOf('.SH EXIT STATUS'))
      const listed = [...section.matchAll(/^\.B (\d+)$/gm)].map((m) => Number(m[1]))
      expect(listed, f).toEqual(codes)
    }
  })
})
