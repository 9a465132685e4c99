// local start and local stop exclude each other (and themselves) on a workdir: a stop during a start would stop
// what the start then records in state.json as running. The lock of a process that is gone is taken over.
import { spawn } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { lockLocalCommand } from '../../../src/core/app/local-start-lock.js'
import { LOCK_FILE } from '../../../src/core/storage/workdir-lock.js'
import { processStartId } from '../../../src/core/storage/process-identity.js'
import { tempDirs } from '../../support/timeline-fixture.js'

const newDir = tempDirs('ps-local-lock-')

describe('lockLocalCommand', () => {
  it('refuses a stop while a start holds it, and a start while a stop holds it, naming the other', async () => {
    const local = join(newDir(), 'local')
    const other = spawn('sleep', ['30'], { stdio: 'ignore' })
    try {
      const pid = other.pid!
      const holdAs = (command: string) =>
        writeFileSync(join(local, LOCK_FILE), JSON.stringify({ pid, processStart: processStartId(pid), command, startedAt: '2026-11-25T00:00:00.000Z' }) + '\n')
      const release = lockLocalCommand(local, '/w', 'pageserver local start')
      release()
      holdAs('local start')
      expect(() => lockLocalCommand(local, '/w', 'pageserver local stop', 'local stop')).toThrow(
        expect.objectContaining({ code: 'LOCAL_START_RUNNING', exitCode: 4, message: `another local start is running on /w (pid ${pid}, since 2026-11-25T00:00:00.000Z)` }),
      )
      holdAs('local stop')
      expect(() => lockLocalCommand(local, '/w', 'pageserver local start')).toThrow(expect.objectContaining({ code: 'LOCAL_STOP_RUNNING', message: expect.stringContaining('another local stop is running') }))
    } finally {
      other.kill('SIGKILL')
    }
    await new Promise((resolve) => other.once('exit', resolve))
    // Its holder gone, the lock is taken over, and released again.
    const release = lockLocalCommand(local, '/w', 'pageserver local stop', 'local stop')
    expect(existsSync(join(local, LOCK_FILE))).toBe(true)
    release()
    expect(existsSync(join(local, LOCK_FILE))).toBe(false)
  })
})
