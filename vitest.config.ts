import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    pool: 'forks',
    // The suites mostly wait on servers, child processes and timers, not on the CPU: three files at a time on
    // a 2-core machine (vitest's default would be one) take the run from about an hour to under half that.
    maxWorkers: 3,
  },
});
