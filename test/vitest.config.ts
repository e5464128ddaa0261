import { defineConfig } from 'vitest/config';

// Integration tests start real servers (SCIMMY, slapd, OpenBao) through test/harness and run
// the built CLI (dist/) as a subprocess: `npm test` builds first.
export default defineConfig({
  test: {
    root: new URL('..', import.meta.url).pathname,
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/harness/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 240_000,
    pool: 'forks',
    maxWorkers: 2,
    // CI also writes a JSON report (PROVKEY_VITEST_JSON) for its one-line summary.
    reporters: process.env.PROVKEY_VITEST_JSON ? ['default', ['json', { outputFile: process.env.PROVKEY_VITEST_JSON }]] : ['default'],
  },
});
