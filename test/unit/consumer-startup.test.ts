import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Consumers are adapters like stores and targets (docs/consumers.md): `status` and `--help` on a
// config whose key has an entra consumer load neither the consumer modules nor @azure/identity.
const root = path.resolve(import.meta.dirname, '../..');
// The tsc output, one file per module: bin/provkey runs the bundle, whose chunks name no module
// (test/unit/startup-modules.test.ts traces the bundle itself).
const bin = path.join(root, 'dist/cli/main.js');
const hook = path.join(root, 'test/harness/trace-module-loads.mjs');
let dir: string;

function modulesLoadedBy(args: string[], expectedStatus = 0): string[] {
  const trace = path.join(dir, `trace-${Math.random().toString(36).slice(2)}.txt`);
  const run = spawnSync(process.execPath, ['--import', hook, bin, ...args], { cwd: dir, env: { ...process.env, PROVKEY_TRACE_LOADS: trace, NO_COLOR: '1' }, encoding: 'utf8' });
  expect(run.status, run.stderr).toBe(expectedStatus);
  return readFileSync(trace, 'utf8').split('\n');
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'provkey-consumer-startup-'));
  writeFileSync(
    path.join(dir, 'provkey.yaml'),
    [
      'keys:',
      '  app:',
      '    target: { type: scim, url: "http://127.0.0.1:9/scim/v2", applier: { type: store } }',
      '    consumers:',
      '      - { type: entra, servicePrincipalId: sp, jobId: job, graphUrl: "https://127.0.0.1:9/v1.0", auth: { method: clientSecret, tenantId: t, clientId: c, clientSecretRef: "env:NOT_SET" } }',
      '      - { type: file, path: token.txt }',
      '',
    ].join('\n'),
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('consumers are loaded lazily', () => {
  it.each([['--help'], ['status']])('%s loads no consumer code and no Azure SDK', (arg) => {
    const modules = modulesLoadedBy([arg]);
    expect(modules.filter((m) => m.includes('/node_modules/@azure'))).toEqual([]);
    expect(modules.filter((m) => m.includes('/dist/consumers/'))).toEqual([]);
    expect(modules.some((m) => m.includes('/node_modules/commander/')), 'the trace sees dependencies').toBe(true);
    if (arg === 'status') expect(modules.some((m) => m.includes('/dist/engine/status.js')), "the trace sees provkey's own modules").toBe(true);
  });

});
