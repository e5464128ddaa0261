// Both sides of a SCIM rotation (issue 10): the built CLI rotates the token at the real SCIM app
// (SCIMMY, test/harness/scim) AND at Microsoft Entra's provisioning job, played by the Graph
// synchronization double (test/harness/graph-synchronization-double.ts), whose
// validateCredentials really calls the SCIM app with the token, as Entra's test connection does.
// Every assertion is a real outcome: which tokens the SCIM app accepts (HTTP status), which
// token the job holds (the double's saved secret), what a provisioning cycle does with it.
// Everything provkey printed (and its audit log and store file) is scanned for every secret.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bearerStatus, describeRun, eventually, ProvkeyCli, readStoredVersions, secretFingerprint, type RunResult } from '../harness/cli.ts';
import { startGraphSynchronizationDouble, type GraphSynchronizationDouble } from '../harness/graph-synchronization-double.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const ADMIN_TOKEN = `scim-admin-${randomBytes(18).toString('base64url')}`;
const GRAPH_CLIENT = '3a1c9e4b-7d2f-4e6a-8b0c-5d9e1f2a3b4c';
const GRAPH_SECRET = `graph-client-${randomBytes(18).toString('base64url')}`;
const WEAK_CLIENT = '9b8a7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d';
const WEAK_SECRET = `weak-client-${randomBytes(18).toString('base64url')}`;

interface ResultsJson {
  ok: boolean;
  exitCode: number;
  results: { key: string; outcome: string; ok: boolean; exitCode: number; message: string; steps: { step: string; ok: boolean; detail?: string }[] }[];
}
interface StatusJson {
  keys: { name: string; consumers?: { name: string; type: string; lastProof: { ok: boolean; fingerprint: string; detail?: string } | null }[] }[];
}

class Workspace {
  readonly dir = mkdtempSync(join(tmpdir(), 'provkey-entra-'));
  readonly config = join(this.dir, 'provkey.yaml');
  readonly cli: ProvkeyCli;

  constructor(
    readonly scim: ScimServer,
    readonly graph: GraphSynchronizationDouble,
  ) {
    this.cli = new ProvkeyCli({ cwd: this.dir, config: this.config, env: { SCIM_ADMIN_TOKEN: ADMIN_TOKEN, GRAPH_CLIENT_SECRET: GRAPH_SECRET, WEAK_CLIENT_SECRET: WEAK_SECRET } });
    this.cli.scanner.addSecret(ADMIN_TOKEN, 'SCIM admin token');
    this.cli.scanner.addSecret(GRAPH_SECRET, 'Graph client secret');
    this.cli.scanner.addSecret(WEAK_SECRET, 'weak Graph client secret');
  }

  write(options: { grace?: string; interval?: string; clientId?: string; secretEnv?: string; restart?: boolean; retries?: number; extraConsumers?: string[] } = {}): this {
    const g = this.graph;
    const consumer = [
      '        - type: entra',
      '          name: entra-prod',
      `          servicePrincipalId: ${JSON.stringify(g.servicePrincipalId)}`,
      `          jobId: ${JSON.stringify(g.jobId)}`,
      `          graphUrl: ${JSON.stringify(g.graphUrl)}`,
      `          authorityHost: ${JSON.stringify(g.authorityHost)}`,
      '          disableInstanceDiscovery: true',
      `          tls: { caFile: ${JSON.stringify(g.caFile)} }`,
      `          auth: { method: clientSecret, tenantId: ${JSON.stringify(g.tenantId)}, clientId: ${JSON.stringify(options.clientId ?? GRAPH_CLIENT)}, clientSecretRef: "env:${options.secretEnv ?? 'GRAPH_CLIENT_SECRET'}" }`,
      `          retries: ${options.retries ?? 2}`,
      '          maxRetryDelay: 2s',
      ...(options.restart ? ['          restart: true'] : []),
    ];
    writeFileSync(
      this.config,
      [
        'keys:',
        '  app:',
        `    rotation: { interval: ${options.interval ?? '30d'}, grace: ${options.grace ?? '1h'} }`,
        '    target:',
        '      type: scim',
        `      url: ${JSON.stringify(this.scim.url)}`,
        '      propagationTimeout: 5s',
        '      requestTimeout: 5s',
        `      applier: { type: http, url: ${JSON.stringify(this.scim.adminUrl)}, authRef: "env:SCIM_ADMIN_TOKEN" }`,
        '    consumers:',
        ...consumer,
        ...(options.extraConsumers ?? []),
        '',
      ].join('\n'),
    );
    return this;
  }

  run(args: string[]): Promise<RunResult> {
    return this.cli.run(args);
  }

  async ok(args: string[]): Promise<RunResult> {
    const result = await this.run(args);
    expect(result.code, describeRun(result)).toBe(0);
    return result;
  }

  reveal(label?: string): Promise<string> {
    return this.cli.reveal('app', label);
  }

  async scanAndRemove(): Promise<void> {
    const storeFile = join(this.dir, '.provkey', 'store.enc');
    if (existsSync(storeFile)) {
      for (const v of await readStoredVersions(this.dir, 'app')) if (v.value !== null) this.cli.scanner.addSecret(v.value, `app v${v.id} (${v.label})`);
    }
    for (const file of [join(this.dir, '.provkey', 'audit.jsonl'), storeFile]) if (existsSync(file)) this.cli.scanner.record(file, readFileSync(file, 'utf8'));
    try {
      this.cli.scanner.assertClean();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

describe('entra consumer: the SCIM app and the Graph synchronization double rotate together', () => {
  let scim: ScimServer;
  let graph: GraphSynchronizationDouble;
  let ws: Workspace | undefined;
  const workspace = () => (ws = new Workspace(scim, graph));

  beforeAll(async () => {
    scim = await startScimServer({ adminToken: ADMIN_TOKEN });
    graph = await startGraphSynchronizationDouble();
    graph.addClient(GRAPH_CLIENT, GRAPH_SECRET, ['Synchronization.ReadWrite.All', 'AuditLog.Read.All']);
    graph.addClient(WEAK_CLIENT, WEAK_SECRET, ['Application.Read.All']);
  });
  afterAll(async () => {
    await graph?.stop();
    await scim?.stop();
  });
  afterEach(async () => {
    const done = ws;
    ws = undefined;
    await done?.scanAndRemove();
  });

  /** The job holds exactly `token`, for the SCIM app's own base URL, and a provisioning cycle with it succeeds. */
  async function expectJobHolds(token: string): Promise<void> {
    expect(graph.savedToken() === token, 'the job holds the current token').toBe(true);
    expect(graph.savedBaseAddress()).toBe(scim.url);
    expect(await graph.runCycle()).toBe('success');
  }

  it('add, rotate, rotate --due (grace end), revoke --previous and test keep the job on the current token', async () => {
    const w = workspace().write({ grace: '1s' });
    const added = await w.ok(['add', 'app']);
    expect(added.stdout).toContain('is current');
    const v1 = await w.reveal('v1');
    expect(await bearerStatus(scim.url, v1)).toBe(200);
    await expectJobHolds(v1);

    const { result, data } = await w.cli.json<ResultsJson>(['rotate', 'app']);
    expect(result.code, describeRun(result)).toBe(0);
    const steps = data.results[0]!.steps.map((s) => (s.step.startsWith('consumer-') ? `${s.step} ${s.detail!.split(':')[0]}` : s.step));
    // The order of the protocol: the app accepts the new token before Entra validates it, Entra switches before finish.
    expect(steps.indexOf('set')).toBeLessThan(steps.indexOf('consumer-validate entra-prod'));
    expect(steps.indexOf('consumer-validate entra-prod')).toBeLessThan(steps.indexOf('consumer-switch entra-prod'));
    expect(steps.indexOf('consumer-switch entra-prod')).toBeLessThan(steps.indexOf('consumer-prove entra-prod'));
    expect(steps.indexOf('consumer-prove entra-prod')).toBeLessThan(steps.indexOf('finish'));
    const v2 = await w.reveal('v2');
    expect(v2).not.toBe(v1);
    expect(await bearerStatus(scim.url, v2)).toBe(200);
    expect(await bearerStatus(scim.url, v1), 'the previous token is still in its grace').toBe(200);
    await expectJobHolds(v2);
    // The switch at Entra is a change provkey made: audited (fingerprint only) before it was made.
    const audited = readFileSync(join(w.dir, '.provkey', 'audit.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { event: string; fingerprint?: string; detail?: { consumer?: string } });
    const v2Fingerprint = data.results[0]!.steps.find((s) => s.step === 'create' || s.step === 'claim')?.detail;
    expect(audited.filter((a) => a.event === 'consumer.switching' && a.detail?.consumer === 'entra-prod').map((a) => a.fingerprint)).toContain(v2Fingerprint);

    // rotate --due: the grace ends (a barrier on the key's own status, not a fixed sleep); the previous token is retired at the app only.
    await eventually(async () => Date.now() > Date.parse((await w.cli.json<{ keys: { previous: { graceUntil: string }[] }[] }>(['status'])).data.keys[0]!.previous[0]!.graceUntil), true, 5000);
    const due = await w.cli.json<ResultsJson>(['rotate', '--due']);
    expect(due.result.code, describeRun(due.result)).toBe(0);
    expect(due.data.results[0]).toMatchObject({ outcome: 'revoked', ok: true });
    expect(await bearerStatus(scim.url, v1)).toBe(401);
    expect(await bearerStatus(scim.url, v2)).toBe(200);
    await expectJobHolds(v2);

    // A fresh rotation, then revoke --previous: the job keeps the current token.
    await w.ok(['rotate', 'app']);
    const v3 = await w.reveal('v3');
    await w.ok(['revoke', 'app', '--previous', '--yes']);
    expect(await bearerStatus(scim.url, v2)).toBe(401);
    expect(await bearerStatus(scim.url, v3)).toBe(200);
    await expectJobHolds(v3);

    // test runs Entra's proof too (its test connection with the saved token, the job's health, the provisioning logs); status shows it.
    const tested = await w.ok(['test', 'app']);
    expect(tested.stdout).toContain('1 consumer(s)');
    const status = await w.cli.json<StatusJson>(['status']);
    const proof = status.data.keys[0]!.consumers![0]!;
    expect(proof).toMatchObject({ name: 'entra-prod', type: 'entra', lastProof: { ok: true, fingerprint: secretFingerprint(v3) } });
    expect(proof.lastProof!.detail).toContain('no failed provisioning');

    // Someone pastes a wrong token into the portal: the next cycle fails, and `test` says so (the
    // saved credentials no longer validate; the provisioning logs show the failure), exit 1.
    const wrong = `pasted-${randomBytes(24).toString('base64url')}`;
    w.cli.scanner.addSecret(wrong, 'a wrong token pasted into the portal');
    graph.saveSecrets({ SecretToken: wrong });
    expect(await graph.runCycle()).toBe('failure');
    const broken = await w.run(['test', 'app']);
    expect(broken.code, describeRun(broken)).toBe(1);
    expect(broken.stdout + broken.stderr).toMatch(/consumer entra-prod: rejected: .*failed provisioning attempt\(s\).*CredentialValidationUnauthorized/);
    const after = await w.cli.json<StatusJson>(['status']);
    expect(after.data.keys[0]!.consumers![0]!.lastProof).toMatchObject({ ok: false });
    // A rotation puts the job right again.
    await w.ok(['rotate', 'app']);
    await expectJobHolds(await w.reveal('v4'));
  });

  it('drill compromise: the leaked token is rejected by the app and the job holds and validates the new one', async () => {
    const w = workspace().write();
    await w.ok(['add', 'app']);
    const leaked = await w.reveal('leaked');
    const { result, data } = await w.cli.json<Record<string, unknown>>(['drill', 'compromise', 'app', '--rto', '60s', '--yes']);
    expect(result.code, describeRun(result)).toBe(0);
    const report = data as { timeToRecoverMs: number; steps: { step: string; endedAtMs?: number }[] };
    const proved = report.steps.find((s) => s.step === 'consumer-prove')!;
    const set = report.steps.find((s) => s.step === 'set')!;
    const switched = report.steps.find((s) => s.step === 'consumer-switch')!;
    expect(report.timeToRecoverMs, 'time-to-recover includes the consumer').toBeGreaterThanOrEqual(proved.endedAtMs!);
    // The outage window without overlap: from the app's set to Entra's switch, reported step by step.
    expect(switched.endedAtMs!).toBeGreaterThanOrEqual(set.endedAtMs!);
    console.log(`drill with an entra consumer: set→switch window ${switched.endedAtMs! - set.endedAtMs!} ms, time-to-recover ${report.timeToRecoverMs} ms`);
    const fresh = await w.reveal('after the drill');
    expect(await bearerStatus(scim.url, leaked)).toBe(401);
    expect(await bearerStatus(scim.url, fresh)).toBe(200);
    await expectJobHolds(fresh);
  });

  it('a failed validateCredentials leaves both sides exactly as they were', async () => {
    const w = workspace().write();
    await w.ok(['add', 'app']);
    const v1 = await w.reveal('v1');
    // The job's BaseAddress names an endpoint the app does not serve: Entra's test connection fails for the new token.
    const putsBefore = graph.calls.filter((c) => c.startsWith('PUT')).length;
    writeFileSync(w.config, readFileSync(w.config, 'utf8').replace('          retries: 2', `          retries: 2\n          baseAddress: ${JSON.stringify(`${scim.url}/nothing-here`)}`));
    const failed = await w.run(['rotate', 'app']);
    expect(failed.code, describeRun(failed)).toBe(1);
    expect(failed.stdout + failed.stderr).toContain('rolled back');
    expect(failed.stdout + failed.stderr).toContain('SystemForCrossDomainIdentityManagementCredentialValidation');
    expect(await w.reveal('still v1')).toBe(v1);
    expect(await bearerStatus(scim.url, v1)).toBe(200);
    const versions = await readStoredVersions(w.dir, 'app');
    const rejectedNew = versions.find((v) => v.label === 'failed');
    expect(rejectedNew, 'the new version is marked failed').toBeDefined();
    expect(graph.savedToken() === v1, 'the job still holds the old token').toBe(true);
    expect(graph.savedBaseAddress(), 'and its old BaseAddress').toBe(scim.url);
    expect(graph.calls.filter((c) => c.startsWith('PUT')).length, 'no PUT secrets after the failed validation').toBe(putsBefore);
  });

  it('a quarantined job after the switch rolls both sides back: the job gets the current token again', async () => {
    const w = workspace().write();
    await w.ok(['add', 'app']);
    const v1 = await w.reveal('v1');
    graph.quarantine('EncounteredQuarantineException');
    const failed = await w.run(['rotate', 'app']);
    expect(failed.code, describeRun(failed)).toBe(1);
    expect(failed.stdout + failed.stderr).toContain('quarantine');
    expect(await w.reveal('still v1')).toBe(v1);
    expect(await bearerStatus(scim.url, v1)).toBe(200);
    expect(graph.savedToken() === v1, 'the job has the current token back').toBe(true);
    // restart: true lifts the quarantine after the switch: the rotation then goes through.
    w.write({ restart: true });
    await w.ok(['rotate', 'app']);
    await expectJobHolds(await w.reveal('v2'));
  });

  it('Graph refusing provkey\'s permission is exit 6 naming it; both sides stay as they were', async () => {
    const w = workspace().write();
    await w.ok(['add', 'app']);
    const v1 = await w.reveal('v1');
    w.write({ clientId: WEAK_CLIENT, secretEnv: 'WEAK_CLIENT_SECRET' });
    const denied = await w.run(['rotate', 'app']);
    expect(denied.code, describeRun(denied)).toBe(6);
    expect(denied.stdout + denied.stderr).toContain('Synchronization.ReadWrite.All');
    expect(denied.stdout + denied.stderr).toContain('Application.ReadWrite.OwnedBy');
    expect(await w.reveal('still v1')).toBe(v1);
    expect(await bearerStatus(scim.url, v1)).toBe(200);
    expect(graph.savedToken() === v1).toBe(true);
  });

  it('Graph throttling: a 429 with Retry-After is waited out within the bound; beyond it, exit 5 with both sides as they were', async () => {
    const w = workspace().write({ retries: 2 });
    await w.ok(['add', 'app']);
    graph.throttleNext(2, 0);
    await w.ok(['rotate', 'app']);
    const v2 = await w.reveal('v2');
    await expectJobHolds(v2);

    graph.throttleNext(100, 0);
    const throttled = await w.run(['rotate', 'app']);
    graph.throttleNext(0);
    expect(throttled.code, describeRun(throttled)).toBe(5);
    expect(throttled.stdout + throttled.stderr).toContain('429');
    expect(await w.reveal('still v2')).toBe(v2);
    expect(await bearerStatus(scim.url, v2)).toBe(200);
    await expectJobHolds(v2);
  });
});
