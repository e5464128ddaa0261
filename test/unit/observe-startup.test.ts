import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// scan of a clean tree needs no store (none is opened), and the observe modules load only
// when asked for: metrics and webhook code stay out of a plain run.
const root = path.resolve(import.meta.dirname, '../..');
// The tsc output, one file per module (bin/provkey runs the bundle, whose chunks name no module:
// test/unit/startup-modules.test.ts checks the bundle's laziness).
const bin = path.join(root, 'dist/cli/main.js');
const hook = path.join(root, 'test/harness/trace-module-loads.mjs');
let dir: string;

function modulesLoadedBy(args: string[], expectedCode = 0): string[] {
  const trace = path.join(dir, `trace-${Math.random().toString(36).slice(2)}.txt`);
  const run = spawnSync(process.execPath, ['--import', hook, bin, ...args], { cwd: dir, env: { ...process.env, PROVKEY_TRACE_LOADS: trace, NO_COLOR: '1' }, encoding: 'utf8' });
  expect(run.status, run.stderr).toBe(expectedCode);
  return readFileSync(trace, 'utf8').split('\n');
}
const under = (modules: string[], folder: string) => modules.filter((m) => m.includes(`/dist/${folder}`)).map((m) => m.slice(m.indexOf('/dist/')));

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'provkey-observe-startup-'));
  writeFileSync(path.join(dir, 'provkey.yaml'), 'keys:\n  app:\n    target:\n      type: scim\n      url: http://127.0.0.1:9/scim/v2\n      applier: { type: store }\n');
  writeFileSync(path.join(dir, 'clean.txt'), 'no tokens here, pk_ alone is not one\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('observe start-up', () => {
  it('--help loads no scan or observe module', () => {
    const modules = modulesLoadedBy(['--help']);
    expect([...under(modules, 'scan/'), ...under(modules, 'observe/')]).toEqual([]);
  });
  it('scan of a clean tree opens no store and no target', () => {
    const modules = modulesLoadedBy(['scan', 'clean.txt']);
    expect(under(modules, 'scan/').length).toBeGreaterThan(0);
    // The audit log's file lock is shared plumbing under stores/file/; an adapter is a store or target module itself.
    const adapters = /\/dist\/(stores\/(file|vault|azure)\.js|stores\/vault\/|targets\/(scim|ldap)\/)/;
    expect(modules.filter((m) => adapters.test(m))).toEqual([]);
    const status = modulesLoadedBy(['status']);
    expect(status.filter((m) => adapters.test(m)), 'the same check sees the store a status run opens').toContain(status.find((m) => m.endsWith('/dist/stores/file.js')));
  });
  it('status without --metrics-file or webhooks loads neither the metrics nor the webhook module', () => {
    const modules = modulesLoadedBy(['status']);
    // events.js is the list of event names the config schema validates against; observer.js is the CLI hook.
    expect(under(modules, 'observe/').filter((m) => !m.endsWith('/observer.js') && !m.endsWith('/events.js'))).toEqual([]);
    const withMetrics = modulesLoadedBy(['status', '--metrics-file', path.join(dir, 'p.prom')]);
    expect(under(withMetrics, 'observe/')).toContain('/dist/observe/metrics.js');
    expect(under(withMetrics, 'observe/')).not.toContain('/dist/observe/webhooks.js');
  });
});
