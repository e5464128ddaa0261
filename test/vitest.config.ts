import { defineConfig } from 'vitest/config';

// Integration tests start real servers (SCIMMY, slapd, OpenBao) through test/harness and run
// the built CLI (dist/) as a subprocess: `npm test` builds first.
export default defineConfig({
  test: {
    root: new URL('..', import.meta.url).pathname,
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 240_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
