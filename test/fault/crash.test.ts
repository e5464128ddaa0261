// Crash tests: provkey is killed with SIGKILL (PROVKEY_FAULT, src/engine/fault.ts) at every
// step of the rotation protocol, and the next run must converge with no lockout: exactly one
// current version, no version left pending, the real SCIM server (SCIMMY) accepting the
// current version and, without overlap, rejecting the old one; the audit chain intact.
// Every line provkey printed is scanned for every secret the test saw.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bearerStatus, describeRun, eventually, ProvkeyCli, type RunResult } from '../harness/cli.ts';
import { sha256Hex, startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const FAULT_POINTS = ['after-claim', 'after-create', 'before-set', 'after-set', 'after-test', 'after-finish'] as const;
type FaultPoint = (typeof FAULT_POINTS)[number];

interface Mode {
  name: string;
  grace: string;
  applier: 'http' | 'exec';
  overlap: boolean;
}

const MODES: Mode[] = [
  { name: 'overlap (grace 1h, http applier)', grace: '1h', applier: 'http', overlap: true },
  { name: 'no overlap (grace 0, exec applier)', grace: '0', applier: 'exec', overlap: false },
];

interface KeyResultJson {
  key: string;
  operation: string;
  outcome: string;
  ok: boolean;
  exitCode: number;
  message: string;
  fingerprint?: string;
}
interface ResultsJson {
  ok: boolean;
  exitCode: number;
  results: KeyResultJson[];
}
interface HistoryJson {
  key: string;
  versions: { id: string; label: string; fingerprint: string }[];
  events: { event: string; outcome?: string; fingerprint?: string }[];
}
interface StatusJson {
  keys: { name: string; state: string; current: { fingerprint: string } | null; lastTest: { ok: boolean } | null }[];
}

const ADMIN_TOKEN = `scim-admin-${sha256Hex(`${process.pid}-${Date.now()}`).slice(0, 32)}`;
const KEY = 'app-scim';

/** A fresh directory with a config for one SCIM key, and a CLI bound to it. */
function keyFixture(server: ScimServer, mode: Pick<Mode, 'grace' | 'applier'>, scanner?: ProvkeyCli['scanner']): { dir: string; cli: ProvkeyCli } {
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
      '      propagationTimeout: 3s',
      '      requestTimeout: 5s',
      `      applier: ${applier}`,
      '',
    ].join('\n'),
  );
  const cli = new ProvkeyCli({ cwd: dir, config, env: { SCIM_ADMIN_TOKEN: ADMIN_TOKEN }, ...(scanner ? { scanner } : {}) });
  cli.scanner.addSecret(ADMIN_TOKEN, 'SCIM admin token');
  return { dir, cli };
}

/** Digests the server accepts now that were not accepted before this test started. */
async function newlyAccepted(server: ScimServer, baseline: string[]): Promise<string[]> {
  return (await server.acceptedDigests()).filter((d) => !baseline.includes(d)).sort();
}

function expectKilled(result: RunResult): void {
  expect(result.signal, describeRun(result)).toBe('SIGKILL');
  expect(result.code, describeRun(result)).toBeNull();
}

/**
 * The state every converged key must be in: one current version, nothing pending, the
 * target accepting exactly the versions the store says are live, tests and audit passing.
 */
async function expectConverged(cli: ProvkeyCli, server: ScimServer, baseline: string[], expected: { rejected?: string[]; accepted?: string[] } = {}): Promise<{ current: string; history: HistoryJson }> {
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
  return { current, history };
}

/** What the converging run reports, and which audit event proves what it did. */
const CONVERGENCE: Record<FaultPoint, { outcome: string; event?: string }> = {
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

describe.each(MODES)('SIGKILL during rotate, $name', (mode) => {
  let server: ScimServer;
  const dirs: string[] = [];
  let cli: ProvkeyCli | undefined;

  beforeAll(async () => {
    server = await startScimServer({ adminToken: ADMIN_TOKEN, propagationMs: 100 });
  });
  afterAll(async () => {
    await server?.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    cli?.scanner.assertClean();
    cli = undefined;
  });

  it.each(FAULT_POINTS)('killed at %s: the next rotate converges with no lockout', async (point) => {
    const fixture = keyFixture(server, mode);
    dirs.push(fixture.dir);
    cli = fixture.cli;
    const baseline = await server.acceptedDigests();

    const added = await cli.run(['add', KEY]);
    expect(added.code, describeRun(added)).toBe(0);
    const old = await cli.reveal(KEY, `${KEY} before the crash`);

    const crashed = await cli.run(['rotate', KEY], { env: { PROVKEY_FAULT: point } });
    expectKilled(crashed);

    // What the crash left behind: a claim (except after finish), and the old version still in use.
    const { data: between } = await cli.json<StatusJson>(['status', KEY]);
    expect(between.keys[0]?.state).toBe(point === 'after-finish' ? 'ok' : 'rotating');
    if (!mode.overlap && (point === 'after-set' || point === 'after-test' || point === 'after-finish')) {
      // set({replace: true}) makes the old version stop working as part of the change.
      expect(await eventually(() => bearerStatus(server.url, old), 401), 'set with replace must retire the old version at the target').toBe(401);
    } else if (point !== 'after-finish') {
      expect(await bearerStatus(server.url, old), 'before the new version is in place the old one must keep working').toBe(200);
    }

    const { result: resumed, data } = await cli.json<ResultsJson>(['rotate', KEY]);
    expect(resumed.code, describeRun(resumed)).toBe(0);
    expect(data.results).toHaveLength(1);
    expect(data.results[0]).toMatchObject({ key: KEY, ok: true, exitCode: 0, outcome: CONVERGENCE[point].outcome });

    const { current, history } = await expectConverged(cli, server, baseline, mode.overlap ? { accepted: [old] } : { rejected: [old] });
    expect(current).not.toBe(old);
    const expectedEvent = CONVERGENCE[point].event;
    if (expectedEvent) expect(history.events.map((e) => e.event)).toContain(expectedEvent);
    if (!mode.overlap) {
      // Without overlap the old version ends revoked in the store too.
      const oldVersion = history.versions.find((v) => v.fingerprint === history.versions[0]!.fingerprint);
      expect(oldVersion?.label).toBe('revoked');
    } else {
      expect(history.versions[0]?.label).toBe('previous');
    }
  });
});

describe('SIGKILL during drill compromise and add', () => {
  let server: ScimServer;
  const dirs: string[] = [];
  let cli: ProvkeyCli | undefined;

  beforeAll(async () => {
    server = await startScimServer({ adminToken: ADMIN_TOKEN, propagationMs: 100 });
  });
  afterAll(async () => {
    await server?.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    cli?.scanner.assertClean();
    cli = undefined;
  });

  it.each(['after-set', 'after-test'] as const)('a drill killed at %s: the leaked version ends rejected, the new one accepted', async (point) => {
    // The key normally rotates with overlap; a drill must contain the leak with none.
    const fixture = keyFixture(server, { grace: '1h', applier: 'http' });
    dirs.push(fixture.dir);
    cli = fixture.cli;
    const baseline = await server.acceptedDigests();
    expect((await cli.run(['add', KEY])).code).toBe(0);
    const leaked = await cli.reveal(KEY, `${KEY} leaked`);

    const crashed = await cli.run(['drill', 'compromise', KEY, '--yes'], { env: { PROVKEY_FAULT: point } });
    expectKilled(crashed);

    const { result: resumed, data } = await cli.json<ResultsJson>(['rotate', KEY]);
    expect(resumed.code, describeRun(resumed)).toBe(0);
    expect(data.results[0]).toMatchObject({ outcome: 'resumed', ok: true });

    const { history } = await expectConverged(cli, server, baseline, { rejected: [leaked] });
    expect(history.versions.map((v) => v.label)).toEqual(['revoked', 'current']);
    expect(history.events.map((e) => e.event)).toContain('drill.resumed');
  });

  it('a drill killed before set: the next rotate rolls the drill back and rotates normally', async () => {
    const fixture = keyFixture(server, { grace: '1h', applier: 'http' });
    dirs.push(fixture.dir);
    cli = fixture.cli;
    const baseline = await server.acceptedDigests();
    expect((await cli.run(['add', KEY])).code).toBe(0);
    const leaked = await cli.reveal(KEY, `${KEY} leaked`);

    expectKilled(await cli.run(['drill', 'compromise', KEY, '--yes'], { env: { PROVKEY_FAULT: 'before-set' } }));
    expect(await bearerStatus(server.url, leaked)).toBe(200);

    const { result: resumed, data } = await cli.json<ResultsJson>(['rotate', KEY]);
    expect(resumed.code, describeRun(resumed)).toBe(0);
    expect(data.results[0]).toMatchObject({ outcome: 'rotated', ok: true });
    await expectConverged(cli, server, baseline, { accepted: [leaked] });
  });

  it.each(['before-set', 'after-set', 'after-test'] as const)('add killed at %s: the next add converges to exactly one working version', async (point) => {
    const fixture = keyFixture(server, { grace: '0', applier: 'exec' });
    dirs.push(fixture.dir);
    cli = fixture.cli;
    const baseline = await server.acceptedDigests();

    expectKilled(await cli.run(['add', KEY], { env: { PROVKEY_FAULT: point } }));
    const { data: between } = await cli.json<StatusJson>(['status', KEY]);
    expect(between.keys[0]?.current).toBeNull();

    const again = await cli.run(['--json', 'add', KEY]);
    expect(again.code, describeRun(again)).toBe(0);
    const outcome = (JSON.parse(again.stdout) as ResultsJson).results[0]?.outcome;
    // Where the target already had the value, the add is finished; else it starts over.
    expect(outcome).toBe(point === 'before-set' ? 'added' : 'resumed');
    await expectConverged(cli, server, baseline);
  });

  it('add killed after finish: the key works and a second add refuses to overwrite it', async () => {
    const fixture = keyFixture(server, { grace: '0', applier: 'exec' });
    dirs.push(fixture.dir);
    cli = fixture.cli;
    const baseline = await server.acceptedDigests();
    expectKilled(await cli.run(['add', KEY], { env: { PROVKEY_FAULT: 'after-finish' } }));
    const again = await cli.run(['add', KEY]);
    expect(again.code, describeRun(again)).toBe(2);
    expect(again.stderr).toContain('already has a current version');
    await expectConverged(cli, server, baseline);
  });
});

describe('two rotations of the same key at once', () => {
  let server: ScimServer;
  let dir: string | undefined;
  let cli: ProvkeyCli | undefined;

  beforeAll(async () => {
    // A slow fleet: each rotation waits ~1 s for its token to propagate, so the two runs overlap.
    server = await startScimServer({ adminToken: ADMIN_TOKEN, propagationMs: 1000 });
  });
  afterAll(async () => {
    cli?.scanner.assertClean();
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each(MODES)('$name: exactly one rotates, the other skips with exit 0', async (mode) => {
    const fixture = keyFixture(server, mode, cli?.scanner);
    dir = fixture.dir;
    cli = fixture.cli;
    const baseline = await server.acceptedDigests();
    expect((await cli.run(['add', KEY])).code).toBe(0);
    const old = await cli.reveal(KEY, `${KEY} before`);

    const runs = await Promise.all([cli.json<ResultsJson>(['rotate', KEY]), cli.json<ResultsJson>(['rotate', KEY])]);
    for (const { result } of runs) expect(result.code, describeRun(result)).toBe(0);
    const outcomes = runs.map(({ data }) => data.results[0]!.outcome).sort();
    expect(outcomes).toEqual(['rotated', 'skipped']);

    const { history } = await expectConverged(cli, server, baseline, mode.overlap ? { accepted: [old] } : { rejected: [old] });
    expect(history.versions).toHaveLength(2);
    expect(history.events.filter((e) => e.event === 'rotate.finished')).toHaveLength(1);
  });
});
