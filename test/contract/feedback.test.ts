/**
 * What the contract suite tells a driver author: tests of undeclared capabilities are reported skipped with the
 * reason (the UNSUPPORTED checks stay tests of their own), and a watch that ignores afterRevision fails with a
 * message saying so, before the runner's own timeout. Run under `node --test`, whose test context can skip.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function runSuite(suite: string, only: string): string {
  const res = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-reporter=tap', `--test-name-pattern=${only}`, 'test/contract/fixtures/feedback-suite.ts'],
    { encoding: 'utf8', timeout: 120_000, env: { ...process.env, FEEDBACK_SUITE: suite } },
  );
  return `${res.stdout}\n${res.stderr}`;
}

describe('contract suite feedback', () => {
  it('reports the tests of undeclared capabilities as skipped with the reason, and runs the UNSUPPORTED checks', () => {
    const out = runSuite('basic', 'watch|lease');
    expect(out).toMatch(/ok \d+ - delivers every change after the given revision, in order, once each # SKIP the adapter does not declare "watch"/);
    expect(out).toContain('# SKIP the adapter does not declare "leases"');
    expect(out).toMatch(/\n\s*ok \d+ - watch rejects with UNSUPPORTED when the adapter does not declare it\n/);
    expect(out).toMatch(/\n\s*ok \d+ - lease\(\) and put\(…, \{ lease \}\) reject with UNSUPPORTED when leases are not declared\n/);
    expect(out).not.toMatch(/not ok/);
  }, 120_000);

  it('fails a watch that ignores afterRevision with a message naming afterRevision, not a bare timeout', () => {
    const out = runSuite('from-revision', 'delivers every change after the given revision');
    expect(out).toMatch(/not ok \d+ - delivers every change after the given revision/);
    expect(out).toContain('a driver that ignores afterRevision');
  }, 120_000);
});
