// Fleets of cron hosts: `rotate --shard I/N` (a stable partition of the keys by a hash of
// their names) and `--jitter DURATION` (a random, bounded start delay for --due runs), run
// through the built CLI; the shard run rotates real keys on the real SCIM server.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { bearerStatus, describeRun, ProvkeyCli, type RunResult } from '../harness/cli.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const ADMIN_TOKEN = `scim-admin-${randomBytes(18).toString('base64url')}`;

function keysYaml(url: string, adminUrl: string, names: string[]): string {
  return `keys:\n${names
    .map((name) => [`  ${name}:`, '    rotation: { interval: 30d, grace: 1h }', '    target:', '      type: scim', `      url: ${JSON.stringify(url)}`, '      propagationTimeout: 5s',
      `      applier: { type: http, url: ${JSON.stringify(adminUrl)}, authRef: "env:SCIM_ADMIN_TOKEN" }`].join('\n'))
    .join('\n')}\n`;
}

function expectOneLineUsageError(result: RunResult, mention: string): void {
  expect(result.code, describeRun(result)).toBe(2);
  const lines = result.stderr.trim().split('\n');
  expect(lines, describeRun(result)).toHaveLength(1);
  expect(lines[0]).toContain(mention);
}

describe('rotate --shard and --jitter', () => {
  let server: ScimServer;
  let dir: string;
  let cli: ProvkeyCli;
  const config = () => path.join(dir, 'provkey.yaml');

  beforeAll(async () => {
    server = await startScimServer({ adminToken: ADMIN_TOKEN, propagationMs: 50 });
  });
  afterAll(async () => server?.stop());
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'provkey-fleet-'));
    cli = new ProvkeyCli({ cwd: dir, config: config(), env: { SCIM_ADMIN_TOKEN: ADMIN_TOKEN } });
    cli.scanner.addSecret(ADMIN_TOKEN, 'SCIM admin token');
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
    cli.scanner.assertClean();
  });

  /** The keys `rotate --all --shard I/N --dry-run` would work on. */
  async function shardPlan(shard: string): Promise<string[]> {
    const { result, data } = await cli.json<{ plan: { key: string }[] }>(['rotate', '--all', '--shard', shard, '--dry-run']);
    expect(result.code, describeRun(result)).toBe(0);
    return data.plan.map((p) => p.key).sort();
  }

  it('N shards partition the keys: disjoint, complete, stable, and adding a key moves no other', async () => {
    const names = Array.from({ length: 24 }, (_, i) => `app-${i}`);
    writeFileSync(config(), keysYaml(server.url, server.adminUrl, names));
    const slices = [await shardPlan('1/3'), await shardPlan('2/3'), await shardPlan('3/3')];
    expect(slices.flat().sort()).toEqual([...names].sort());
    expect(new Set(slices.flat()).size).toBe(names.length);
    for (const slice of slices) expect(slice.length, 'a hash spreads 24 keys over every one of 3 shards').toBeGreaterThan(0);
    expect(await shardPlan('2/3')).toEqual(slices[1]);
    expect(await shardPlan('1/1')).toEqual([...names].sort());

    writeFileSync(config(), keysYaml(server.url, server.adminUrl, [...names, 'new-key']));
    const after = [await shardPlan('1/3'), await shardPlan('2/3'), await shardPlan('3/3')];
    after.forEach((slice, i) => expect(slice.filter((n) => n !== 'new-key')).toEqual(slices[i]));
  });

  it('a shard run rotates its own keys on the SCIM server and leaves the others alone', async () => {
    const names = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta'];
    writeFileSync(config(), keysYaml(server.url, server.adminUrl, names));
    for (const name of names) expect((await cli.run(['add', name])).code).toBe(0);
    const before = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await cli.reveal(n)] as const)));
    const mine = await shardPlan('1/2');
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.length).toBeLessThan(names.length);

    const { result, data } = await cli.json<{ results: { key: string; outcome: string }[] }>(['rotate', '--all', '--shard', '1/2']);
    expect(result.code, describeRun(result)).toBe(0);
    expect(data.results.map((r) => r.key).sort()).toEqual(mine);
    for (const name of names) {
      const now = await cli.reveal(name, `${name} after the shard run`);
      if (mine.includes(name)) {
        expect(now, name).not.toBe(before[name]);
        expect(await bearerStatus(server.url, now)).toBe(200);
      } else expect(now, name).toBe(before[name]);
    }
  });

  it('--jitter waits a random time within its bound before a --due run, and not at all on a dry run', async () => {
    writeFileSync(config(), keysYaml(server.url, server.adminUrl, ['app']));
    expect((await cli.run(['add', 'app'])).code).toBe(0);
    const run = await cli.run(['--verbose', 'rotate', '--due', '--jitter', '300ms']);
    expect(run.code, describeRun(run)).toBe(0);
    const waited = /jitter: waiting (\d+) ms \(up to 300 ms\)/.exec(run.stderr);
    expect(waited, describeRun(run)).not.toBeNull();
    expect(Number(waited![1])).toBeLessThanOrEqual(300);
    const dry = await cli.run(['--verbose', 'rotate', '--due', '--jitter', '1h', '--dry-run']);
    expect(dry.code, describeRun(dry)).toBe(0);
    expect(dry.stderr).not.toContain('jitter: waiting');
  });

  it('bad --shard and --jitter values: one line, exit 2', async () => {
    writeFileSync(config(), keysYaml(server.url, server.adminUrl, ['app']));
    for (const shard of ['0/3', '4/3', '1/1001', '3', 'a/b', '1/0', '-1/2']) expectOneLineUsageError(await cli.run(['rotate', '--due', '--shard', shard]), '--shard');
    expectOneLineUsageError(await cli.run(['rotate', '--due', '--jitter', '2h']), '--jitter');
    expectOneLineUsageError(await cli.run(['rotate', '--due', '--jitter', 'soon']), '--jitter');
    expectOneLineUsageError(await cli.run(['rotate', 'app', '--jitter', '5m']), '--due');
  });
});
