// Shared by the crash tests: a key on the default file store pointed at a real SCIM server
// (SCIMMY), and what "converged with no lockout" means, checked against the real server.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { bearerStatus, describeRun, eventually, ProvkeyCli, readStoredVersions, type RunResult } from '../harness/cli.ts';
import { sha256Hex, startScimServer, type ScimServer } from '../harness/servers/scim.ts';

export const FAULT_POINTS = ['after-claim', 'after-create', 'before-set', 'after-set', 'after-test', 'after-finish'] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];

export interface Mode {
  name: string;
  grace: string;
  applier: 'http' | 'exec';
  overlap: boolean;
}

export const MODES: Mode[] = [
  { name: 'overlap (grace 1h, http applier)', grace: '1h', applier: 'http', overlap: true },
  { name: 'no overlap (grace 0, exec applier)', grace: '0', applier: 'exec', overlap: false },
];

export interface KeyResultJson {
  key: string;
  operation: string;
  outcome: string;
  ok: boolean;
  exitCode: number;
  message: string;
  fingerprint?: string;
}
export interface ResultsJson {
  ok: boolean;
  exitCode: number;
  results: KeyResultJson[];
}
export interface HistoryJson {
  key: string;
  versions: { id: string; label: string; fingerprint: string }[];
  events: { event: string; outcome?: string; fingerprint?: string }[];
}
export interface StatusJson {
  keys: { name: string; state: string; current: { fingerprint: string } | null; lastTest: { ok: boolean } | null }[];
}

export const ADMIN_TOKEN = `scim-admin-${sha256Hex(`${process.pid}-${Date.now()}`).slice(0, 32)}`;
export const KEY = 'app-scim';

/** A fresh directory with a config for one SCIM key, and a CLI bound to it. */
export function keyFixture(server: ScimServer, mode: Pick<Mode, 'grace' | 'applier'> & { propagationTimeout?: string }, scanner?: ProvkeyCli['scanner']): { dir: string; cli: ProvkeyCli } {
  const dir = mkdtempSync(join(tmpdir(), 'provkey-crash-'));
  const applier =
    mode.applier === 'http'
      ? `{ type: http, url: ${JSON.stringify(server.adminUrl)}, authRef: "env:SCIM_ADMIN_TOKEN" }`
      : `{ type: exec, command: ${JSON.stringify(server.hookCommand)} }`;
  const config = join(dir, 'provkey.yaml');
  writeFileSync(
    config,
    [
      'keys:',
      `  ${KEY}:`,
      `    rotation: { interval: 30d, grace: ${mode.grace} }`,
      '    target:',
      '      type: scim',
      `      url: ${JSON.stringify(server.url)}`,
      `      propagationTimeout: ${mode.propagationTimeout ?? '2s'}`,
      '      requestTimeout: 5s',
      `      applier: ${applier}`,
      '',
    ].join('\n'),
  );
  const cli = new ProvkeyCli({ cwd: dir, config, env: { SCIM_ADMIN_TOKEN: ADMIN_TOKEN }, ...(scanner ? { scanner } : {}) });
  cli.scanner.addSecret(ADMIN_TOKEN, 'SCIM admin token');
  return { dir, cli };
}

/**
 * One crash-test suite (call it inside a describe): a SCIM server for the whole block, a fresh
 * key directory per test via `key()`, the secret scan after every test, cleanup at the end.
 */
export function crashSuite(serverOptions: { propagationMs: number }): { readonly server: ScimServer; key(mode: Parameters<typeof keyFixture>[1]): { dir: string; cli: ProvkeyCli } } {
  let server: ScimServer | undefined;
  const dirs: string[] = [];
  let cli: ProvkeyCli | undefined;
  beforeAll(async () => {
    server = await startScimServer({ adminToken: ADMIN_TOKEN, ...serverOptions });
  });
  afterAll(async () => {
    await server?.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    cli?.scanner.assertClean();
    cli = undefined;
  });
  return {
    get server() {
      if (!server) throw new Error('crashSuite: the server starts in beforeAll');
      return server;
    },
    key(mode) {
      const fixture = keyFixture(this.server, mode);
      dirs.push(fixture.dir);
      cli = fixture.cli;
      return fixture;
    },
  };
}

/** Digests the server accepts now that were not accepted before this test started. */
export async function newlyAccepted(server: ScimServer, baseline: string[]): Promise<string[]> {
  return (await server.acceptedDigests()).filter((d) => !baseline.includes(d)).sort();
}

/**
 * Adds every value the store still holds for the key to the scan list: the pending version a
 * crashed run generated is readable nowhere else, and it must not be printed either.
 */
export async function learnStoredSecrets(cli: ProvkeyCli, dir: string): Promise<void> {
  for (const version of await readStoredVersions(dir, KEY)) {
    if (version.value !== null) cli.scanner.addSecret(version.value, `${KEY} v${version.id} (${version.label}, read from the store)`);
  }
}

export function expectKilled(result: RunResult): void {
  expect(result.signal, describeRun(result)).toBe('SIGKILL');
  expect(result.code, describeRun(result)).toBeNull();
}

/**
 * The state every converged key must be in: one current version, nothing pending, the
 * target accepting exactly the versions the store says are live, tests and audit passing.
 */
export async function expectConverged(cli: ProvkeyCli, server: ScimServer, baseline: string[], expected: { rejected?: string[]; accepted?: string[] } = {}): Promise<{ current: string; history: HistoryJson }> {
  const { result: historyRun, data: history } = await cli.json<HistoryJson>(['history', KEY]);
  expect(historyRun.code, describeRun(historyRun)).toBe(0);
  const labels = history.versions.map((v) => v.label);
  expect(labels.filter((l) => l === 'current'), `labels: ${labels.join(', ')}`).toHaveLength(1);
  expect(labels, 'no version may be left pending').not.toContain('pending');

  const current = await cli.reveal(KEY, `${KEY} current`);
  expect(await bearerStatus(server.url, current), 'the target accepts the current version').toBe(200);
  for (const token of expected.accepted ?? []) expect(await bearerStatus(server.url, token), 'still in its grace period').toBe(200);
  for (const token of expected.rejected ?? []) {
    expect(await eventually(() => bearerStatus(server.url, token), 401), 'a revoked version must be rejected').toBe(401);
  }
  // The target accepts exactly the live versions of this key: nothing rolled back or abandoned still works.
  const live = history.versions.filter((v) => v.label === 'current' || v.label === 'previous').length;
  const accepted = await eventually(async () => (await newlyAccepted(server, baseline)).length, live);
  expect(accepted, `the server accepts ${accepted} of this key's tokens; the store has ${live} live versions`).toBe(live);
  expect(await newlyAccepted(server, baseline)).toContain(sha256Hex(current));

  const tested = await cli.run(['test', KEY]);
  expect(tested.code, describeRun(tested)).toBe(0);
  const { data: status } = await cli.json<StatusJson>(['status', KEY]);
  expect(status.keys[0]).toMatchObject({ name: KEY, state: 'ok', lastTest: { ok: true } });
  const audit = await cli.run(['audit', 'verify']);
  expect(audit.code, describeRun(audit)).toBe(0);
  await learnStoredSecrets(cli, cli.defaults.cwd!);
  return { current, history };
}

/** What the converging run reports, and which audit event proves what it did. */
export const CONVERGENCE: Record<FaultPoint, { outcome: string; event?: string }> = {
  // The target never saw the new version: the claim is dropped and a fresh rotation runs.
  'after-claim': { outcome: 'rotated', event: 'rotate.abandoned' },
  'after-create': { outcome: 'rotated', event: 'rotate.abandoned' },
  // "setting" was stored but the target was not touched: the pending version is tested, found unaccepted, rolled back; then a fresh rotation.
  'before-set': { outcome: 'rotated', event: 'rotate.rolled_back' },
  // The target has the new version: the run finishes the interrupted rotation forward.
  'after-set': { outcome: 'resumed', event: 'rotate.resumed' },
  'after-test': { outcome: 'resumed', event: 'rotate.resumed' },
  // Everything but the audit record was done: the key is simply rotated again.
  'after-finish': { outcome: 'rotated' },
};

