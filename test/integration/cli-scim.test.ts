// provkey end to end: the built CLI as a subprocess, on the default embedded file store,
// against a real SCIM 2.0 service provider (SCIMMY, test/harness/scim). Every assertion is
// about a real outcome: the HTTP status the SCIM server gives a token, the bytes of the store
// file, the audit chain. Everything provkey printed in a test (plus its audit log and store
// file) is scanned for every secret the test saw.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bearerStatus, describeRun, eventually, ProvkeyCli, readStoredVersions, secretFingerprint, type RunResult } from '../harness/cli.ts';
import { sha256Hex, startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const ADMIN_TOKEN = `scim-admin-${randomBytes(18).toString('base64url')}`;

interface KeyOptions {
  interval?: string;
  grace?: string;
  /** http: the server's token endpoint; exec: the token hook, or this argv. */
  applier?: 'http' | 'exec' | { command: string[] };
  propagationTimeout?: string;
}

interface KeyResultJson {
  key: string;
  operation: string;
  outcome: string;
  ok: boolean;
  exitCode: number;
  message: string;
  fingerprint?: string;
  steps: { step: string; ok: boolean; detail?: string }[];
  tests: { expect: string; verdict: string; ok: boolean; at: string; ms: number; probes: { name: string; outcome: string; status?: number | string; ms: number }[] }[];
}
interface ResultsJson {
  ok: boolean;
  exitCode: number;
  results: KeyResultJson[];
}
interface HistoryJson {
  key: string;
  versions: { id: string; label: string; fingerprint: string; graceUntil?: string }[];
  events: { event: string; outcome?: string; fingerprint?: string }[];
}
interface StatusJson {
  keys: Array<{
    name: string;
    store: string;
    target: string;
    current: { fingerprint: string; createdAt: string } | null;
    nextRotationAt: string | null;
    lastTest: { ok: boolean; at: string } | null;
    [more: string]: unknown;
  }>;
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const FINGERPRINT = /^sha256:[0-9a-f]{12}$/;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A random bearer token nobody ever gave the server. */
const strayToken = () => `pk_${randomBytes(32).toString('base64url')}`;

function keyYaml(server: ScimServer, name: string, options: KeyOptions = {}): string {
  const applier = options.applier ?? 'http';
  const applierYaml =
    applier === 'http'
      ? `{ type: http, url: ${JSON.stringify(server.adminUrl)}, authRef: "env:SCIM_ADMIN_TOKEN" }`
      : `{ type: exec, command: ${JSON.stringify(applier === 'exec' ? server.hookCommand : applier.command)} }`;
  return [
    `  ${name}:`,
    `    rotation: { interval: ${options.interval ?? '30d'}, grace: ${options.grace ?? '1h'} }`,
    '    target:',
    '      type: scim',
    `      url: ${JSON.stringify(server.url)}`,
    `      propagationTimeout: ${options.propagationTimeout ?? '5s'}`,
    '      requestTimeout: 5s',
    `      applier: ${applierYaml}`,
  ].join('\n');
}

/**
 * One test's world: a directory with provkey.yaml, the default file store under .provkey/,
 * and a CLI whose output (and the store and audit files) the afterEach hook scans.
 */
class Workspace {
  readonly dir = mkdtempSync(join(tmpdir(), 'provkey-cli-'));
  readonly config = join(this.dir, 'provkey.yaml');
  readonly storeFile = join(this.dir, '.provkey', 'store.enc');
  readonly auditFile = join(this.dir, '.provkey', 'audit.jsonl');
  readonly cli: ProvkeyCli;
  readonly server: ScimServer;

  constructor(server: ScimServer) {
    this.server = server;
    this.cli = new ProvkeyCli({ cwd: this.dir, config: this.config, env: { SCIM_ADMIN_TOKEN: ADMIN_TOKEN } });
    this.cli.scanner.addSecret(ADMIN_TOKEN, 'SCIM admin token');
  }

  private readonly keys = new Set<string>();

  /** Keys whose stored values join the scan (writeKeys tracks its own). */
  track(...names: string[]): this {
    for (const name of names) this.keys.add(name);
    return this;
  }

  writeKeys(keys: Record<string, KeyOptions>): this {
    for (const name of Object.keys(keys)) this.keys.add(name);
    writeFileSync(this.config, `keys:\n${Object.entries(keys).map(([name, options]) => keyYaml(this.server, name, options)).join('\n')}\n`);
    return this;
  }

  run(args: string[], opts: Parameters<ProvkeyCli['run']>[1] = {}): Promise<RunResult> {
    return this.cli.run(args, opts);
  }

  json<T>(args: string[], opts: Parameters<ProvkeyCli['run']>[1] = {}) {
    return this.cli.json<T>(args, opts);
  }

  async ok(args: string[], opts: Parameters<ProvkeyCli['run']>[1] = {}): Promise<RunResult> {
    const result = await this.run(args, opts);
    expect(result.code, describeRun(result)).toBe(0);
    return result;
  }

  reveal(key: string, label?: string): Promise<string> {
    return this.cli.reveal(key, label);
  }

  async history(key: string): Promise<HistoryJson> {
    const { result, data } = await this.json<HistoryJson>(['history', key]);
    expect(result.code, describeRun(result)).toBe(0);
    return data;
  }

  /**
   * Every value the store still holds joins the secrets; the audit log and the (encrypted)
   * store file join the outputs: neither may contain a secret.
   */
  async scanAndRemove(): Promise<void> {
    if (existsSync(this.storeFile)) {
      for (const key of this.keys) {
        for (const v of await readStoredVersions(this.dir, key)) if (v.value !== null) this.cli.scanner.addSecret(v.value, `${key} v${v.id} (${v.label}, read from the store)`);
      }
    }
    for (const [where, file] of [['audit log', this.auditFile], ['store file', this.storeFile]] as const) {
      if (existsSync(file)) this.cli.scanner.record(where, readFileSync(file, 'utf8'));
    }
    try {
      this.cli.scanner.assertClean();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

async function adminTokens(server: ScimServer, action: 'add' | 'remove', token: string): Promise<void> {
  const response = await fetch(server.adminUrl, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ action, token }),
  });
  expect(response.status).toBe(204);
}

function expectOneLineError(result: RunResult, code: number, ...mentions: string[]): void {
  expect(result.code, describeRun(result)).toBe(code);
  const lines = result.stderr.trim().split('\n');
  expect(lines, describeRun(result)).toHaveLength(1);
  expect(result.stderr, 'no stack trace').not.toMatch(/^\s+at /m);
  for (const mention of mentions) expect(lines[0]).toContain(mention);
}

describe('provkey CLI end to end: file store + SCIMMY', () => {
  let server: ScimServer;
  let ws: Workspace | undefined;
  const workspace = (): Workspace => (ws = new Workspace(server));

  beforeAll(async () => {
    server = await startScimServer({ adminToken: ADMIN_TOKEN, propagationMs: 150 });
  });
  afterAll(async () => {
    await server?.stop();
  });
  afterEach(async () => {
    const done = ws;
    ws = undefined;
    await done?.scanAndRemove();
  });

  it('init by flags writes a config and a 0600 store key; add puts a token the server accepts', async () => {
    const w = workspace().track('app');
    const init = await w.ok([
      'init', '--key', 'app', '--url', server.url,
      '--applier', 'http', '--applier-url', server.adminUrl, '--applier-auth-ref', 'env:SCIM_ADMIN_TOKEN',
      '--interval', '30d', '--grace', '1h',
    ]);
    expect(init.stdout).toContain('wrote');
    expect(statSync(join(w.dir, '.provkey', 'store.key')).mode & 0o777).toBe(0o600);
    expect(readFileSync(w.config, 'utf8')).toContain('env:SCIM_ADMIN_TOKEN');
    expect(readFileSync(w.config, 'utf8')).not.toContain(ADMIN_TOKEN);

    const again = await w.run(['init', '--key', 'app', '--url', server.url]);
    expectOneLineError(again, 2, 'already exists');

    const added = await w.ok(['add', 'app']);
    expect(added.stdout).toMatch(/sha256:[0-9a-f]{12} is current/);
    const token = await w.reveal('app');
    expect(await bearerStatus(server.url, token)).toBe(200);
    expect(await bearerStatus(server.url, strayToken())).toBe(401);
    expect(added.stdout).toContain(secretFingerprint(token));

    const twice = await w.run(['add', 'app']);
    expectOneLineError(twice, 2, 'already has a current version');
  });

  it('rotate with overlap keeps the old token until revoke --previous; revoke without --yes changes nothing', async () => {
    const w = workspace().writeKeys({ app: { grace: '1h' } });
    await w.ok(['add', 'app']);
    const old = await w.reveal('app', 'app v1');

    const { result: rotated, data } = await w.json<ResultsJson>(['rotate', 'app']);
    expect(rotated.code, describeRun(rotated)).toBe(0);
    expect(data.results[0]).toMatchObject({ outcome: 'rotated', ok: true, previousFingerprint: secretFingerprint(old) });
    const next = await w.reveal('app', 'app v2');
    expect(next).not.toBe(old);
    expect(await bearerStatus(server.url, next)).toBe(200);
    expect(await bearerStatus(server.url, old), 'the previous token works during its grace period').toBe(200);
    const history = await w.history('app');
    const previous = history.versions.find((v) => v.fingerprint === secretFingerprint(old));
    expect(previous?.label).toBe('previous');
    const graceLeft = Date.parse(previous!.graceUntil!) - Date.now();
    expect(graceLeft).toBeGreaterThan(55 * 60_000);
    expect(graceLeft).toBeLessThanOrEqual(60 * 60_000);

    // Not a TTY and no --yes: refused, and nothing at all changed.
    const storeBefore = readFileSync(w.storeFile);
    const auditBefore = readFileSync(w.auditFile);
    const refused = await w.run(['revoke', 'app', '--previous']);
    expectOneLineError(refused, 2, '--yes');
    expect(readFileSync(w.storeFile).equals(storeBefore), 'store file unchanged').toBe(true);
    expect(readFileSync(w.auditFile).equals(auditBefore), 'audit log unchanged').toBe(true);
    expect(await bearerStatus(server.url, old)).toBe(200);

    const dry = await w.ok(['revoke', 'app', '--previous', '--dry-run']);
    expect(dry.stdout).toContain(`would revoke ${secretFingerprint(old)} (previous)`);
    expect(readFileSync(w.storeFile).equals(storeBefore)).toBe(true);

    const revoked = await w.ok(['revoke', 'app', '--previous', '--yes']);
    expect(revoked.stdout).toContain(`revoked ${secretFingerprint(old)}`);
    expect(await bearerStatus(server.url, old), 'a revoked token is rejected at once (revoke waits for proof)').toBe(401);
    expect(await bearerStatus(server.url, next)).toBe(200);
    expect((await w.history('app')).versions.map((v) => v.label)).toEqual(['revoked', 'current']);
  });

  it('rotate --due: nothing due is a no-op; a due interval rotates', async () => {
    const w = workspace().writeKeys({ steady: { interval: '30d' }, hasty: { interval: '1s', grace: '1h' } });
    await w.ok(['add', 'steady']);
    await w.ok(['add', 'hasty']);
    const steady = await w.reveal('steady');
    const hastyOld = await w.reveal('hasty', 'hasty v1');

    const notYet = await w.ok(['rotate', '--due', 'steady']);
    expect(notYet.stdout).toContain('not due');
    expect(await w.reveal('steady')).toBe(steady);

    await sleep(1100);
    const { result, data } = await w.json<ResultsJson>(['rotate', '--due']);
    expect(result.code, describeRun(result)).toBe(0);
    const byKey = Object.fromEntries(data.results.map((r) => [r.key, r]));
    expect(byKey.steady).toMatchObject({ outcome: 'skipped', message: 'not due', ok: true });
    expect(byKey.hasty).toMatchObject({ outcome: 'rotated', ok: true });
    const hastyNew = await w.reveal('hasty', 'hasty v2');
    expect(hastyNew).not.toBe(hastyOld);
    expect(await bearerStatus(server.url, hastyNew)).toBe(200);
    expect(await bearerStatus(server.url, hastyOld), 'still in its 1h grace').toBe(200);
    expect(await w.reveal('steady')).toBe(steady);
  });

  it('rotate --due: an expired grace period revokes the previous token, without rotating again', async () => {
    const w = workspace().writeKeys({ app: { interval: '30d', grace: '1s' } });
    await w.ok(['add', 'app']);
    const old = await w.reveal('app', 'app v1');
    await w.ok(['rotate', 'app']);
    const current = await w.reveal('app', 'app v2');
    expect(await bearerStatus(server.url, old)).toBe(200);

    await sleep(1100);
    const { result, data } = await w.json<ResultsJson>(['rotate', '--due']);
    expect(result.code, describeRun(result)).toBe(0);
    expect(data.results[0]).toMatchObject({ key: 'app', ok: true, outcome: 'revoked' });
    expect(await bearerStatus(server.url, old)).toBe(401);
    expect(await w.reveal('app')).toBe(current);
    expect(await bearerStatus(server.url, current)).toBe(200);
    expect((await w.history('app')).events.map((e) => e.event)).toContain('grace-end.version');
  });

  it('test --json reports each identity provider probe; status --json keeps its contract', async () => {
    const w = workspace().writeKeys({ app: {}, spare: {} });
    await w.ok(['add', 'app']);
    const token = await w.reveal('app');

    const { result, data } = await w.json<ResultsJson>(['test', 'app']);
    expect(result.code, describeRun(result)).toBe(0);
    expect(data).toMatchObject({ ok: true, exitCode: 0 });
    const [tested] = data.results;
    expect(tested).toMatchObject({ key: 'app', operation: 'test', outcome: 'tested', ok: true, fingerprint: secretFingerprint(token) });
    expect(tested!.tests).toHaveLength(1);
    const test = tested!.tests[0]!;
    expect(test).toMatchObject({ expect: 'accept', verdict: 'accepted', ok: true });
    expect(test.at).toMatch(ISO);
    expect(test.probes.map((p) => [p.name, p.outcome, p.status])).toEqual([
      ['entra-user-query', 'pass', 200],
      ['okta-user-page', 'pass', 200],
      ['service-provider-config', 'pass', 200],
      ['wrong-token-rejected', 'pass', 401],
    ]);
    for (const probe of test.probes) expect(typeof probe.ms).toBe('number');

    // A key the server does not accept: exit 1, verdict rejected.
    await adminTokens(server, 'remove', token);
    expect(await eventually(() => bearerStatus(server.url, token), 401)).toBe(401);
    const failed = await w.json<ResultsJson>(['test', 'app']);
    expect(failed.result.code).toBe(1);
    expect(failed.data.results[0]?.tests[0]).toMatchObject({ verdict: 'rejected', ok: false });
    await adminTokens(server, 'add', token);
    expect(await eventually(() => bearerStatus(server.url, token), 200)).toBe(200);
    await w.ok(['test', 'app']);

    const { result: statusRun, data: status } = await w.json<StatusJson>(['status']);
    expect(statusRun.code, describeRun(statusRun)).toBe(0);
    expect(Object.keys(status)).toEqual(['schemaVersion', 'keys']);
    expect(status.keys.map((k) => k.name)).toEqual(['app', 'spare']);
    const [app, spare] = status.keys;
    expect(app).toMatchObject({ name: 'app', store: 'default', target: 'scim', current: { fingerprint: secretFingerprint(token) }, lastTest: { ok: true } });
    expect(app!.current!.fingerprint).toMatch(FINGERPRINT);
    expect(app!.current!.createdAt).toMatch(ISO);
    expect(app!.lastTest!.at).toMatch(ISO);
    expect(Date.parse(app!.nextRotationAt!)).toBe(Date.parse(app!.current!.createdAt) + 30 * 86_400_000);
    expect(spare).toMatchObject({ name: 'spare', store: 'default', target: 'scim', current: null, nextRotationAt: null, lastTest: null });

    const human = await w.ok(['status']);
    expect(human.stdout).toContain(secretFingerprint(token));
  });

  it('history, get (fingerprint only) and get --reveal (the value, audited)', async () => {
    const w = workspace().writeKeys({ app: {} });
    await w.ok(['add', 'app']);
    const v1 = await w.reveal('app', 'app v1');
    await w.ok(['rotate', 'app']);

    const got = await w.ok(['get', 'app']);
    const { data: gotJson } = await w.json<{ key: string; fingerprint: string }>(['get', 'app']);
    const v2 = await w.reveal('app', 'app v2');
    expect(got.stdout).toContain(secretFingerprint(v2));
    expect(got.stdout).toContain('--reveal');
    expect(gotJson).toMatchObject({ key: 'app', fingerprint: secretFingerprint(v2) });
    expect(await bearerStatus(server.url, v2)).toBe(200);

    const history = await w.ok(['history', 'app']);
    expect(history.stdout).toContain(secretFingerprint(v1));
    expect(history.stdout).toContain(secretFingerprint(v2));
    for (const event of ['key.added', 'rotate.finished', 'key.revealed']) expect(history.stdout).toContain(event);
    const revealed = (await w.history('app')).events.filter((e) => e.event === 'key.revealed');
    expect(revealed.map((e) => e.fingerprint)).toEqual([secretFingerprint(v1), secretFingerprint(v2)]);
    expect(readFileSync(w.auditFile, 'utf8')).toContain('"event":"key.revealed"');
  });

  it('import from stdin: an accepted value is stored; a rejected one is not', async () => {
    const w = workspace().writeKeys({ adopted: {}, refused: {} });
    const existing = w.cli.scanner.addSecret(strayToken(), 'imported token');
    await adminTokens(server, 'add', existing);
    expect(await eventually(() => bearerStatus(server.url, existing), 200)).toBe(200);

    const imported = await w.ok(['import', 'adopted'], { input: `${existing}\n` });
    expect(imported.stdout).toContain(`imported: ${secretFingerprint(existing)} is current`);
    expect(await w.reveal('adopted')).toBe(existing);
    expect((await w.history('adopted')).events.map((e) => e.event)).toContain('key.imported');

    const unknown = w.cli.scanner.addSecret(strayToken(), 'token the server never saw');
    const refused = await w.run(['import', 'refused'], { input: unknown });
    expect(refused.code, describeRun(refused)).toBe(1);
    expect(refused.stderr).toContain('nothing was stored');
    const { data: status } = await w.json<StatusJson>(['status', 'refused']);
    expect(status.keys[0]?.current).toBeNull();
    expect((await w.history('refused')).versions).toEqual([]);

    const empty = await w.run(['import', 'refused'], { input: '' });
    expectOneLineError(empty, 2, 'stdin was empty');
  });

  it('drill compromise --dry-run touches nothing; a real drill contains the leak within the RTO', async () => {
    const w = workspace().writeKeys({ app: { grace: '1h' } });
    await w.ok(['add', 'app']);
    const leaked = await w.reveal('app', 'leaked token');

    const storeBefore = readFileSync(w.storeFile);
    const auditBefore = readFileSync(w.auditFile);
    const serverBefore = await server.state();
    const dry = await w.ok(['drill', 'compromise', 'app', '--dry-run']);
    expect(dry.stdout).toContain('dry run');
    expect(dry.stdout).toContain(secretFingerprint(leaked));
    expect(readFileSync(w.storeFile).equals(storeBefore), 'store file unchanged').toBe(true);
    expect(readFileSync(w.auditFile).equals(auditBefore), 'audit log unchanged').toBe(true);
    const serverAfter = await server.state();
    expect(serverAfter.accepted).toEqual(serverBefore.accepted);
    expect(serverAfter.pending).toEqual([]);
    expect(await bearerStatus(server.url, leaked)).toBe(200);

    const refused = await w.run(['drill', 'compromise', 'app']);
    expectOneLineError(refused, 2, '--yes');

    const { result, data: report } = await w.json<Record<string, unknown>>(['drill', 'compromise', 'app', '--rto', '60s', '--yes']);
    expect(result.code, describeRun(result)).toBe(0);
    expect(report).toMatchObject({ key: 'app', scenario: 'compromise', dryRun: false, ok: true, withinRto: true, rtoMs: 60_000, leakedFingerprint: secretFingerprint(leaked) });
    expect(typeof report.timeToContainMs).toBe('number');
    expect(typeof report.timeToRecoverMs).toBe('number');
    expect(report.timeToContainMs as number).toBeLessThanOrEqual(60_000);
    expect(report.timeToRecoverMs as number).toBeLessThanOrEqual(report.timeToContainMs as number);
    const fresh = await w.reveal('app', 'token after the drill');
    expect(report.newFingerprint).toBe(secretFingerprint(fresh));
    expect(await bearerStatus(server.url, leaked), 'the leaked token is rejected').toBe(401);
    expect(await bearerStatus(server.url, fresh)).toBe(200);
    expect((await w.history('app')).versions.map((v) => v.label)).toEqual(['revoked', 'current']);
  });

  it('an applier that fails (wrong admin token) rolls back: exit 6 (a refused credential, docs/cli.md), current still accepted, pending marked failed', async () => {
    const w = workspace().writeKeys({ app: {} });
    await w.ok(['add', 'app']);
    const current = await w.reveal('app');
    const wrongAdmin = w.cli.scanner.addSecret(`scim-admin-${randomBytes(18).toString('base64url')}`, 'wrong admin token');

    const { result, data } = await w.json<ResultsJson>(['rotate', 'app'], { env: { SCIM_ADMIN_TOKEN: wrongAdmin } });
    expect(result.code, describeRun(result)).toBe(6);
    expect(data.results[0]).toMatchObject({ outcome: 'rolled_back', ok: false, exitCode: 6 });
    expect(data.results[0]!.message).toContain('denied');
    const human = await w.run(['rotate', 'app'], { env: { SCIM_ADMIN_TOKEN: wrongAdmin } });
    expect(human.code).toBe(6);
    expect(human.stderr).toContain('rolled back');

    expect(await w.reveal('app')).toBe(current);
    expect(await bearerStatus(server.url, current)).toBe(200);
    const history = await w.history('app');
    expect(history.versions.map((v) => v.label)).toEqual(['current', 'failed', 'failed']);
    expect(history.events.filter((e) => e.event === 'rotate.rolled_back')).toHaveLength(2);
    await w.ok(['audit', 'verify']);
  });

  it('a new token that never propagates (exec hook that does nothing) rolls back after the propagation timeout', async () => {
    const w = workspace().writeKeys({ app: { applier: 'exec', grace: '0' } });
    await w.ok(['add', 'app']);
    const current = await w.reveal('app');
    expect(await bearerStatus(server.url, current)).toBe(200);

    // The hook reads the token and exits 0 without installing it anywhere.
    w.writeKeys({ app: { applier: { command: ['/bin/sh', '-c', 'cat >/dev/null'] }, grace: '0', propagationTimeout: '2s' } });
    const started = Date.now();
    const { result, data } = await w.json<ResultsJson>(['rotate', 'app']);
    expect(result.code, describeRun(result)).toBe(1);
    expect(data.results[0]).toMatchObject({ outcome: 'rolled_back', ok: false });
    // It retried with backoff for most of the 2 s timeout before giving up.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    const testStep = data.results[0]!.steps.find((s) => s.step === 'test');
    expect(testStep).toMatchObject({ ok: false });
    expect(Number(/after (\d+) attempt/.exec(testStep?.detail ?? '')?.[1])).toBeGreaterThanOrEqual(3);
    expect(data.results[0]!.message).toContain('connection test with the new version failed');
    expect(await w.reveal('app')).toBe(current);
    expect(await bearerStatus(server.url, current)).toBe(200);
    expect((await w.history('app')).versions.map((v) => v.label)).toEqual(['current', 'failed']);
    const { data: status } = await w.json<StatusJson>(['status', 'app']);
    expect(status.keys[0]).toMatchObject({ state: 'ok', current: { fingerprint: secretFingerprint(current) } });
  });

  it('bad config, unknown keys and bad flags: exit 2 with one line naming the field, no stack trace', async () => {
    const w = workspace().writeKeys({ app: {} });
    const good = readFileSync(w.config, 'utf8');

    writeFileSync(w.config, good.replace('      type: scim\n', '      type: scim\n      bogus: 1\n'));
    expectOneLineError(await w.run(['status']), 2, 'keys.app.target', 'bogus');
    const asJson = await w.run(['--json', 'status']);
    expect(asJson.code).toBe(2);
    expect(JSON.parse(asJson.stderr)).toMatchObject({ error: { code: 'config.invalid', exitCode: 2 } });

    writeFileSync(w.config, good.replace('interval: 30d', 'interval: 30x'));
    expectOneLineError(await w.run(['rotate', 'app']), 2, 'keys.app.rotation.interval', 'is not a duration');

    writeFileSync(w.config, good.replace('grace: 1h', 'grace: soon'));
    expectOneLineError(await w.run(['test']), 2, 'keys.app.rotation.grace');

    writeFileSync(w.config, good);
    expectOneLineError(await w.run(['rotate', 'nope']), 2, '"nope"');
    expectOneLineError(await w.run(['get', 'nope']), 2, '"nope"');
    expectOneLineError(await w.run(['drill', 'compromise', 'app', '--rto', 'fast', '--dry-run']), 2, '--rto');
    const usage = await w.run(['rotate']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).not.toMatch(/^\s+at /m);
    const missing = await w.run(['test'], { config: join(w.dir, 'absent.yaml') });
    expectOneLineError(missing, 2, 'absent.yaml');
  });

  it('audit verify: intact after real work; one edited line → exit 3 naming the line', async () => {
    const w = workspace().writeKeys({ app: {} });
    await w.ok(['add', 'app']);
    await w.ok(['rotate', 'app']);
    await w.ok(['test', 'app']);
    const verified = await w.ok(['audit', 'verify']);
    // Three events, and a store.write line announcing each store write (replay detection).
    const written = readFileSync(w.auditFile, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(written.filter((e) => e.event !== 'store.write').map((e) => e.event)).toHaveLength(3);
    expect(verified.stdout).toContain(`${written.length} entries, chain intact`);

    const lines = readFileSync(w.auditFile, 'utf8').split('\n');
    const index = written.findIndex((e) => e.event === 'rotate.finished');
    const entry = JSON.parse(lines[index]!) as Record<string, unknown>;
    lines[index] = JSON.stringify({ ...entry, outcome: 'failed' });
    writeFileSync(w.auditFile, lines.join('\n'));

    const broken = await w.run(['audit', 'verify']);
    expectOneLineError(broken, 3, `line ${index + 1}`);
    const { result, data } = await w.json<{ ok: boolean; line: number }>(['audit', 'verify']);
    expect(result.code).toBe(3);
    expect(data).toMatchObject({ ok: false, line: index + 1 });
  });
});

describe('no-overlap rotation on a slow fleet (http applier)', () => {
  let server: ScimServer;
  let ws: Workspace | undefined;

  beforeAll(async () => {
    // Every change takes 2.5 s to reach the app, longer than the key's propagation timeout.
    server = await startScimServer({ adminToken: ADMIN_TOKEN, propagationMs: 2500 });
  });
  afterAll(async () => {
    await server?.stop();
  });
  afterEach(async () => {
    const done = ws;
    ws = undefined;
    await done?.scanAndRemove();
  });

  it('a token that propagates too late is rolled back, and the current token still works once every change has landed', async () => {
    const w = (ws = new Workspace(server)).writeKeys({ app: { grace: '0', propagationTimeout: '10s' } });
    await w.ok(['add', 'app']);
    const current = await w.reveal('app');
    expect(await bearerStatus(server.url, current)).toBe(200);

    w.writeKeys({ app: { grace: '0', propagationTimeout: '1s' } });
    const { result, data } = await w.json<ResultsJson>(['rotate', 'app']);
    expect(result.code, describeRun(result)).toBe(1);
    expect(data.results[0]).toMatchObject({ outcome: 'rolled_back' });

    // "replace" removed the current token at the target; the rollback must have put it back.
    const drained = await eventually(async () => (await server.state()).pending.length, 0, 8000);
    expect(drained, 'all token changes propagated').toBe(0);
    expect(await bearerStatus(server.url, current), 'after the rollback the current token must work').toBe(200);
    expect((await server.state()).accepted).toContain(sha256Hex(current));
    expect((await w.history('app')).versions.map((v) => v.label)).toEqual(['current', 'failed']);
  });
});
