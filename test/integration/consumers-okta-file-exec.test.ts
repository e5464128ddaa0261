// The okta, file and exec consumers (issue 10) end to end, all three on one key in config order,
// with the built CLI against the real SCIM app (SCIMMY) and the Okta Application Connections
// double (test/harness/okta-connections-double.ts), whose activation really calls the SCIM app
// with the token. Assertions are real outcomes: the tokens the SCIM app accepts, the bytes of the
// consumer file, the exec consumer's own state, the token Okta's connection holds.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bearerStatus, describeRun, ProvkeyCli, readStoredVersions, secretFingerprint, type RunResult } from '../harness/cli.ts';
import { startOktaConnectionsDouble, type OktaConnectionsDouble } from '../harness/okta-connections-double.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const ADMIN_TOKEN = `scim-admin-${randomBytes(18).toString('base64url')}`;
const EXEC_HOOK = fileURLToPath(new URL('../harness/consumers/exec-consumer-hook.ts', import.meta.url));

interface StatusJson {
  keys: { name: string; consumers?: { name: string; type: string; lastProof: { ok: boolean; fingerprint: string } | null }[] }[];
}

class Workspace {
  readonly dir = mkdtempSync(join(tmpdir(), 'provkey-consumers-'));
  readonly config = join(this.dir, 'provkey.yaml');
  readonly tokenFile = join(this.dir, 'agent', 'scim.token');
  readonly execState = join(this.dir, 'exec-consumer.state');
  readonly cli: ProvkeyCli;

  constructor(
    readonly scim: ScimServer,
    readonly okta: OktaConnectionsDouble,
  ) {
    this.cli = new ProvkeyCli({ cwd: this.dir, config: this.config, env: { SCIM_ADMIN_TOKEN: ADMIN_TOKEN, OKTA_API_TOKEN: okta.apiToken, OKTA_READONLY_TOKEN: okta.readOnlyToken } });
    mkdirSync(join(this.dir, 'agent'), { mode: 0o700 });
    for (const [value, label] of [[ADMIN_TOKEN, 'SCIM admin token'], [okta.apiToken, 'Okta API token'], [okta.readOnlyToken, 'read-only Okta API token']] as const) this.cli.scanner.addSecret(value, label);
  }

  write(options: { oktaTokenEnv?: string; oktaBaseUrl?: string; execCommand?: string[] } = {}): this {
    writeFileSync(
      this.config,
      [
        'keys:',
        '  app:',
        '    rotation: { interval: 30d, grace: 1h }',
        '    target:',
        '      type: scim',
        `      url: ${JSON.stringify(this.scim.url)}`,
        '      propagationTimeout: 5s',
        '      requestTimeout: 5s',
        `      applier: { type: http, url: ${JSON.stringify(this.scim.adminUrl)}, authRef: "env:SCIM_ADMIN_TOKEN" }`,
        '    consumers:',
        `      - { type: file, name: agent, path: ${JSON.stringify(this.tokenFile)} }`,
        `      - { type: exec, name: hook, command: ${JSON.stringify(options.execCommand ?? [process.execPath, EXEC_HOOK, this.execState])}, timeout: 10s }`,
        `      - { type: okta, name: okta-org2org, orgUrl: ${JSON.stringify(this.okta.orgUrl)}, appId: ${JSON.stringify(this.okta.appId)}, apiTokenRef: "env:${options.oktaTokenEnv ?? 'OKTA_API_TOKEN'}", retries: 2, maxRetryDelay: 1s${options.oktaBaseUrl ? `, baseUrl: ${JSON.stringify(options.oktaBaseUrl)}` : ''} }`,
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

  /** Every consumer holds exactly `token`. */
  expectConsumersHold(token: string): void {
    expect(readFileSync(this.tokenFile, 'utf8') === token, 'the file consumer holds the current token').toBe(true);
    expect(statSync(this.tokenFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(this.execState, 'utf8') === token, 'the exec consumer holds the current token').toBe(true);
    expect(this.okta.connectionToken() === token, "Okta's connection holds the current token").toBe(true);
    expect(this.okta.status()).toBe('ENABLED');
    expect(this.okta.connectionBaseUrl()).toBe(this.scim.url);
  }

  async scanAndRemove(): Promise<void> {
    const storeFile = join(this.dir, '.provkey', 'store.enc');
    if (existsSync(storeFile)) for (const v of await readStoredVersions(this.dir, 'app')) if (v.value !== null) this.cli.scanner.addSecret(v.value, `app v${v.id} (${v.label})`);
    for (const file of [join(this.dir, '.provkey', 'audit.jsonl'), storeFile]) if (existsSync(file)) this.cli.scanner.record(file, readFileSync(file, 'utf8'));
    try {
      this.cli.scanner.assertClean();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

describe('okta, file and exec consumers: delivered in order, rolled back in reverse', () => {
  let scim: ScimServer;
  let okta: OktaConnectionsDouble;
  let ws: Workspace | undefined;
  const workspace = () => (ws = new Workspace(scim, okta));

  beforeAll(async () => {
    scim = await startScimServer({ adminToken: ADMIN_TOKEN });
    okta = await startOktaConnectionsDouble();
  });
  afterAll(async () => {
    await okta?.stop();
    await scim?.stop();
  });
  afterEach(async () => {
    const done = ws;
    ws = undefined;
    await done?.scanAndRemove();
  });

  it('add, rotate, drill, test and status: every consumer holds and proves the current token', async () => {
    const w = workspace().write();
    await w.ok(['add', 'app']);
    const v1 = await w.reveal('v1');
    w.expectConsumersHold(v1);
    await w.ok(['rotate', 'app']);
    const v2 = await w.reveal('v2');
    w.expectConsumersHold(v2);
    expect(await bearerStatus(scim.url, v1), 'the previous token is in its grace').toBe(200);

    // Dry runs name the consumers they would switch, and touch nothing.
    const planned = await w.ok(['rotate', 'app', '--dry-run']);
    expect(planned.stdout).toContain('and switch agent, hook, okta-org2org');
    const drillPlan = await w.ok(['drill', 'compromise', 'app', '--dry-run']);
    expect(drillPlan.stdout).toContain('consumer okta-org2org (okta): validate, switch to and prove the new version');
    w.expectConsumersHold(v2);

    const drill = await w.run(['drill', 'compromise', 'app', '--rto', '60s', '--yes']);
    expect(drill.code, describeRun(drill)).toBe(0);
    const v3 = await w.reveal('after the drill');
    expect(await bearerStatus(scim.url, v2), 'the leaked token is rejected').toBe(401);
    expect(await bearerStatus(scim.url, v3)).toBe(200);
    w.expectConsumersHold(v3);

    const tested = await w.ok(['test', 'app']);
    expect(tested.stdout).toContain('3 consumer(s)');
    const { data } = await w.cli.json<StatusJson>(['status']);
    expect(data.keys[0]!.consumers!.map((c) => [c.name, c.type, c.lastProof?.ok, c.lastProof?.fingerprint])).toEqual([
      ['agent', 'file', true, secretFingerprint(v3)],
      ['hook', 'exec', true, secretFingerprint(v3)],
      ['okta-org2org', 'okta', true, secretFingerprint(v3)],
    ]);

    // A consumer that no longer holds the current token fails `test` (exit 1), naming it.
    okta.disable();
    const broken = await w.run(['test', 'app']);
    expect(broken.code, describeRun(broken)).toBe(1);
    expect(broken.stdout + broken.stderr).toContain('okta-org2org');
  });

  it("Okta refusing the token at activation rolls back in reverse: file and exec get the current token back, the app drops the new one", async () => {
    const w = workspace().write();
    await w.ok(['add', 'app']);
    const v1 = await w.reveal('v1');
    const accepted = await scim.acceptedDigests();
    // Okta is told an endpoint the app does not serve: its connection test fails for the new token.
    w.write({ oktaBaseUrl: `${scim.url}/nothing-here` });
    const failed = await w.run(['rotate', 'app']);
    expect(failed.code, describeRun(failed)).toBe(1);
    expect(failed.stdout + failed.stderr).toContain('rolled back');
    expect(failed.stdout + failed.stderr).toContain('E0000001');
    expect(await w.reveal('still v1')).toBe(v1);
    expect((await scim.acceptedDigests()).sort(), 'the app accepts exactly what it accepted before').toEqual([...accepted].sort());
    w.write();
    w.expectConsumersHold(v1);
  });

  it("Okta refusing provkey's API token is exit 6 naming the permission; nothing changed anywhere", async () => {
    const w = workspace().write();
    await w.ok(['add', 'app']);
    const v1 = await w.reveal('v1');
    const accepted = await scim.acceptedDigests();
    w.write({ oktaTokenEnv: 'OKTA_READONLY_TOKEN' });
    const denied = await w.run(['rotate', 'app']);
    expect(denied.code, describeRun(denied)).toBe(6);
    expect(denied.stdout + denied.stderr).toContain('okta.apps.manage');
    expect(await w.reveal('still v1')).toBe(v1);
    expect((await scim.acceptedDigests()).sort()).toEqual([...accepted].sort());
    w.expectConsumersHold(v1);
  });

  it('an exec consumer that refuses to validate rolls back: the consumer before it gets the current token back', async () => {
    const w = workspace().write();
    await w.ok(['add', 'app']);
    const v1 = await w.reveal('v1');
    const accepted = await scim.acceptedDigests();
    const refuse = join(w.dir, 'refuse.sh');
    writeFileSync(refuse, '#!/bin/sh\n[ "$PROVKEY_ACTION" = validate ] && { echo "the agent cannot use this token" >&2; exit 1; }\nexit 0\n', { mode: 0o700 });
    w.write({ execCommand: [refuse] });
    const failed = await w.run(['rotate', 'app']);
    expect(failed.code, describeRun(failed)).toBe(1);
    expect(failed.stdout + failed.stderr).toContain('the agent cannot use this token');
    // The file consumer comes first: it was switched, and got the current token back.
    expect(readFileSync(w.tokenFile, 'utf8') === v1).toBe(true);
    expect(okta.connectionToken() === v1).toBe(true);
    expect((await scim.acceptedDigests()).sort()).toEqual([...accepted].sort());
    expect(await w.reveal('still v1')).toBe(v1);
  });
});
