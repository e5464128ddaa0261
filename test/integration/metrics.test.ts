// --metrics-file end to end: the built CLI rotates, fails, tests and reports keys on the real
// SCIM server, and each run rewrites a Prometheus textfile that the strict parser node_exporter
// uses (expfmt, test/harness/promcheck) accepts and the npm parser reads back.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import parsePrometheus from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRun } from '../harness/cli.ts';
import { checkExposition } from '../harness/promcheck.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';
import { ADMIN_TOKEN, ObserveWorkspace } from './observe-workspace.ts';

function value(text: string, family: string, labels: Record<string, string>): number | undefined {
  const m = parsePrometheus(text).find((f) => f.name === family)?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
  return m ? Number(m.value) : undefined;
}

describe('--metrics-file', () => {
  let server: ScimServer;
  let w: ObserveWorkspace;
  let file: string;

  beforeAll(async () => {
    server = await startScimServer({ adminToken: ADMIN_TOKEN, propagationMs: 0 });
    w = new ObserveWorkspace(server).writeConfig({ app: { grace: '1h' }, other: { interval: '30d' } });
    file = join(w.dir, 'textfile', 'provkey.prom');
    await w.ok(['add', 'app']);
    await w.ok(['add', 'other']);
  });
  afterAll(async () => {
    await w?.scanAndRemove();
    await server?.stop();
  });

  /** Reads the file, records it for the secret scan, and checks it with the strict parser. */
  function read(): string {
    const text = readFileSync(file, 'utf8');
    w.cli.scanner.record('metrics file', text);
    checkExposition(file);
    return text;
  }

  it('a directory that is not there is a usage error before anything changes', async () => {
    const before = readFileSync(w.storeFile);
    const result = await w.run(['--metrics-file', file, 'rotate', 'app']);
    expect(result.code, describeRun(result)).toBe(2);
    expect(result.stderr).toMatch(/^provkey: --metrics-file: cannot write in .*textfile \(ENOENT\)\n$/);
    expect(readFileSync(w.storeFile).equals(before), 'store untouched').toBe(true);
  });

  it('rotate writes per-key and per-run gauges atomically; a failed rotation shows as such', async () => {
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(w.dir, 'textfile'));
    await w.ok(['--metrics-file', file, 'rotate', 'app']);
    let text = read();
    expect(value(text, 'provkey_key_info', { key: 'app', store: 'default', target: 'scim', state: 'ok' })).toBe(1);
    expect(value(text, 'provkey_key_info', { key: 'other', state: 'ok' })).toBe(1);
    expect(value(text, 'provkey_key_previous_versions', { key: 'app' })).toBe(1);
    expect(value(text, 'provkey_key_last_rotation_ok', { key: 'app' })).toBe(1);
    expect(value(text, 'provkey_key_last_rotation_outcome', { key: 'app', outcome: 'rotated' })).toBe(1);
    expect(value(text, 'provkey_key_last_rotation_duration_seconds', { key: 'app' })).toBeGreaterThan(0);
    expect(value(text, 'provkey_key_last_rotation_ok', { key: 'other' })).toBeUndefined();
    expect(value(text, 'provkey_key_last_test_ok', { key: 'app' })).toBe(1);
    expect(value(text, 'provkey_run_results', { command: 'rotate', outcome: 'rotated' })).toBe(1);
    expect(value(text, 'provkey_run_results', { command: 'rotate', outcome: 'failed' })).toBe(0);
    expect(value(text, 'provkey_run_exit_code', { command: 'rotate' })).toBe(0);
    const inode = statSync(file).ino;

    // The admin endpoint refuses a wrong token: the rotation of "other" fails and is rolled back.
    const failed = await w.run(['--metrics-file', file, 'rotate', 'other'], { env: { SCIM_ADMIN_TOKEN: 'wrong-admin-token-000000' } });
    expect(failed.code, describeRun(failed)).not.toBe(0);
    text = read();
    expect(statSync(file).ino, 'replaced by rename, not rewritten in place').not.toBe(inode);
    expect(readdirSync(join(w.dir, 'textfile')), 'no temp file left behind').toEqual(['provkey.prom']);
    expect(value(text, 'provkey_key_last_rotation_ok', { key: 'other' })).toBe(0);
    expect(value(text, 'provkey_run_exit_code', { command: 'rotate' })).toBe(failed.code);
    const outcome = parsePrometheus(text).find((f) => f.name === 'provkey_key_last_rotation_outcome')!.metrics.find((m) => m.labels?.key === 'other')!.labels!.outcome;
    expect(['failed', 'rolled_back']).toContain(outcome);
    expect(value(text, 'provkey_run_results', { command: 'rotate', outcome: outcome! })).toBe(1);
    // The earlier success of app is carried forward.
    expect(value(text, 'provkey_key_last_rotation_outcome', { key: 'app', outcome: 'rotated' })).toBe(1);
  });

  it('test and status runs keep the rotation runs and add their own', async () => {
    await w.ok(['--metrics-file', file, 'test', 'other']);
    let text = read();
    expect(value(text, 'provkey_run_results', { command: 'test', outcome: 'tested' })).toBe(1);
    expect(value(text, 'provkey_key_last_test_ok', { key: 'other' })).toBe(1);
    const testedAt = value(text, 'provkey_key_last_test_timestamp_seconds', { key: 'other' })!;
    expect(Math.abs(testedAt * 1000 - Date.now())).toBeLessThan(60_000);
    await w.ok(['status', '--metrics-file', file]);
    text = read();
    expect(value(text, 'provkey_run_exit_code', { command: 'status' })).toBe(0);
    expect(value(text, 'provkey_run_exit_code', { command: 'test' })).toBe(0);
    expect(value(text, 'provkey_run_exit_code', { command: 'rotate' })).toBeGreaterThan(0);
    expect(value(text, 'provkey_key_last_rotation_ok', { key: 'other' })).toBe(0);
    expect(value(text, 'provkey_key_age_seconds', { key: 'other' })).toBeGreaterThanOrEqual(0);
  });
});
