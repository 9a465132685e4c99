/**
 * Whether the `postgres` OS user can reach a directory (traverse every parent and read it): PostgreSQL runs
 * as that user when we are root, and a data directory under an unreachable parent (e.g. /root) would not
 * start.
 */
import { spawnSync } from 'node:child_process'

export function postgresCanAccess(dir: string): boolean {
  const r = spawnSync('runuser', ['-u', 'postgres', '--', 'test', '-r', dir, '-a', '-x', dir], {
    env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
    stdio: 'ignore',
    timeout: 10_000,
  })
  return r.status === 0
}
