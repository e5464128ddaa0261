import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheus from 'parse-prometheus-text-format';
import { afterAll, describe, expect, it } from 'vitest';
import type { KeyResult } from '../../src/engine/result.ts';
import type { KeyStatus } from '../../src/engine/status.ts';
import { renderMetrics } from '../../src/observe/metrics.ts';
import { checkExposition } from '../harness/promcheck.ts';

const dir = mkdtempSync(join(tmpdir(), 'provkey-metrics-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const now = new Date('2026-12-01T10:00:00.000Z');
const status = (name: string, more: Partial<KeyStatus> = {}): KeyStatus => ({
  name,
  store: 'default',
  target: 'scim',
  state: 'ok',
  current: { fingerprint: 'sha256:0123456789ab', createdAt: '2026-11-30T10:00:00.000Z', versionId: '2' },
  ageMs: 86_400_000,
  nextRotationAt: '2026-12-30T10:00:00.000Z',
  due: false,
  previous: [{ fingerprint: 'sha256:ba9876543210', graceUntil: '2026-12-01T11:00:00.000Z' }],
  lastTest: { ok: true, at: '2026-11-30T10:00:01.500Z' },
  ...more,
});
const result = (key: string, outcome: KeyResult['outcome'], ms: number, operation = 'rotate'): KeyResult => ({ key, operation, outcome, ok: outcome === 'rotated', exitCode: outcome === 'rotated' ? 0 : 1, message: '', steps: [], tests: [], ms });

/** value of one sample, per the npm parser, by family and label subset. */
function sample(text: string, family: string, labels: Record<string, string> = {}): number | undefined {
  const fam = parsePrometheus(text).find((f) => f.name === family);
  const m = fam?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
  return m ? Number(m.value) : undefined;
}

function strict(text: string) {
  const file = join(dir, `m-${Math.random().toString(36).slice(2)}.prom`);
  writeFileSync(file, text);
  return checkExposition(file);
}

describe('renderMetrics', () => {
  it('the strict checker is strict: a repeated family or a bad label fails it', () => {
    expect(() => strict('# TYPE a gauge\na 1\n# TYPE a gauge\na 2\n')).toThrow(/second TYPE/);
    expect(() => strict('a{x=1} 1\n')).toThrow(/expfmt/);
  });

  it('per key and per run gauges, accepted by the strict expfmt parser and read back by the npm parser', () => {
    const text = renderMetrics({
      now, command: 'rotate', exitCode: 1, runMs: 2500,
      statuses: [status('app'), status('ldap', { state: 'lockout', lastTest: { ok: false, at: '2026-11-30T12:00:00.000Z' }, due: true })],
      results: [result('app', 'rotated', 1234), result('ldap', 'lockout', 40)],
    });
    const families = strict(text);
    expect(Object.values(families).every((f) => f.type === 'GAUGE')).toBe(true);
    expect(sample(text, 'provkey_key_info', { key: 'ldap', state: 'lockout' })).toBe(1);
    expect(sample(text, 'provkey_key_age_seconds', { key: 'app' })).toBe(86_400);
    expect(sample(text, 'provkey_key_next_rotation_timestamp_seconds', { key: 'app' })).toBe(Date.parse('2026-12-30T10:00:00.000Z') / 1000);
    expect(sample(text, 'provkey_key_last_test_ok', { key: 'ldap' })).toBe(0);
    expect(sample(text, 'provkey_key_last_test_timestamp_seconds', { key: 'app' })).toBe(Date.parse('2026-11-30T10:00:01.500Z') / 1000);
    expect(sample(text, 'provkey_key_lockout', { key: 'ldap' })).toBe(1);
    expect(sample(text, 'provkey_key_due', { key: 'ldap' })).toBe(1);
    expect(sample(text, 'provkey_key_last_rotation_duration_seconds', { key: 'app' })).toBe(1.234);
    expect(sample(text, 'provkey_key_last_rotation_outcome', { key: 'ldap', outcome: 'lockout' })).toBe(1);
    expect(sample(text, 'provkey_run_results', { command: 'rotate', outcome: 'rotated' })).toBe(1);
    expect(sample(text, 'provkey_run_results', { command: 'rotate', outcome: 'failed' })).toBe(0);
    expect(sample(text, 'provkey_run_exit_code', { command: 'rotate' })).toBe(1);
    expect(sample(text, 'provkey_run_duration_seconds', { command: 'rotate' })).toBe(2.5);
    // Both parsers see the same samples.
    const npmCount = parsePrometheus(text).reduce((n, f) => n + f.metrics.length, 0);
    expect(Object.values(families).reduce((n, f) => n + f.samples.length, 0)).toBe(npmCount);
  });

  it('a later run carries forward other commands\' runs and last rotations it did not redo, and replaces its own', () => {
    const first = renderMetrics({ now, command: 'rotate', exitCode: 0, runMs: 10, statuses: [status('app'), status('gone')], results: [result('app', 'failed', 5), result('gone', 'rotated', 7)] });
    const later = new Date(now.getTime() + 60_000);
    // "gone" left the config; app's failure must survive a status run, then be replaced by a rotation.
    const second = renderMetrics({ now: later, command: 'status', exitCode: 0, runMs: 3, statuses: [status('app')], results: [], previous: first });
    strict(second);
    expect(sample(second, 'provkey_key_last_rotation_outcome', { key: 'app', outcome: 'failed' })).toBe(1);
    expect(sample(second, 'provkey_key_last_rotation_ok', { key: 'gone' })).toBeUndefined();
    expect(sample(second, 'provkey_key_info', { key: 'gone' })).toBeUndefined();
    expect(sample(second, 'provkey_run_timestamp_seconds', { command: 'rotate' })).toBe(now.getTime() / 1000);
    expect(sample(second, 'provkey_run_timestamp_seconds', { command: 'status' })).toBe(later.getTime() / 1000);
    const third = renderMetrics({ now: later, command: 'rotate', exitCode: 0, runMs: 3, statuses: [status('app')], results: [result('app', 'rotated', 9)], previous: second });
    strict(third);
    expect(sample(third, 'provkey_key_last_rotation_outcome', { key: 'app', outcome: 'failed' })).toBeUndefined();
    expect(sample(third, 'provkey_key_last_rotation_outcome', { key: 'app', outcome: 'rotated' })).toBe(1);
    expect(sample(third, 'provkey_run_timestamp_seconds', { command: 'status' })).toBe(later.getTime() / 1000);
    expect(parsePrometheus(third).filter((f) => f.name === 'provkey_run_exit_code')[0]!.metrics).toHaveLength(2);
  });

  it('label values are escaped; a foreign or broken previous file is ignored, not copied', () => {
    const text = renderMetrics({
      now, command: 'status', exitCode: 0, runMs: 1,
      statuses: [status('app', { store: 'we"ird\\store\nname' })],
      results: [],
      previous: 'provkey_run_exit_code{command="rotate"} \nnode_cpu{x="1"} 5\nprovkey_nope 1\n# TYPE provkey_run_exit_code counter\n',
    });
    strict(text);
    expect(parsePrometheus(text).find((f) => f.name === 'provkey_key_info')!.metrics[0]!.labels!.store).toBe('we"ird\\store\nname');
    expect(text).not.toContain('node_cpu');
    expect(text).not.toContain('provkey_nope');
    expect(sample(text, 'provkey_run_exit_code', { command: 'rotate' })).toBeUndefined();
  });
});
