// The entra consumer beyond the double (docs/entra.md, testing), in two tiers that run only
// when what they need is given, and are skipped with their reason otherwise:
//
//   - the emulator tier: entra-emulator (PROVKEY_TEST_ENTRA_EMULATOR, with
//     PROVKEY_TEST_AZURE_KV_EMULATOR, see test/harness/servers/azure-emulators.ts) issues the
//     Graph token, and the Graph synchronization double checks it against the emulator's JWKS;
//   - the real-tenant tier: PROVKEY_TEST_ENTRA_* name a real app registration and a real
//     provisioning job whose app is reachable from Entra; read-only: provkey's check runs there
//     (a full rotation against a real tenant needs an app provkey can change, not automated here).

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerStatus, describeRun, ProvkeyCli } from '../harness/cli.ts';
import { startGraphSynchronizationDouble, type GraphSynchronizationDouble } from '../harness/graph-synchronization-double.ts';
import { azureEmulatorBinaries, ENTRA_SEED, startAzureEmulators, type AzureEmulators } from '../harness/servers/azure-emulators.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const ADMIN_TOKEN = `scim-admin-${randomBytes(18).toString('base64url')}`;
const bins = azureEmulatorBinaries();

describe.skipIf('skip' in bins)(`entra consumer with entra-emulator tokens${'skip' in bins ? ` (skipped: ${bins.skip})` : ''}`, () => {
  let emulators: AzureEmulators;
  let graph: GraphSynchronizationDouble;
  let scim: ScimServer;
  let dir: string;

  beforeAll(async () => {
    emulators = await startAzureEmulators(bins as { kv: string; entra: string });
    const ca = readFileSync(emulators.caFile, 'utf8');
    const discovery = await emulators.entra('GET', `/${emulators.tenantId}/v2.0/.well-known/openid-configuration`);
    const { jwks_uri: jwksUrl, issuer } = JSON.parse(discovery.body) as { jwks_uri: string; issuer: string };
    graph = await startGraphSynchronizationDouble({ entraEmulator: { jwksUrl, issuer, ca, grants: { [ENTRA_SEED.daemonClientId]: ['Synchronization.ReadWrite.All'] } } });
    scim = await startScimServer({ adminToken: ADMIN_TOKEN });
    dir = mkdtempSync(join(tmpdir(), 'provkey-entra-emu-'));
    writeFileSync(join(dir, 'ca.pem'), ca + readFileSync(graph.caFile, 'utf8'));
  }, 60_000);
  afterAll(async () => {
    await Promise.all([graph?.stop(), scim?.stop(), emulators?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('add and rotate: the job holds the current token; Graph accepted the emulator-issued token', async () => {
    writeFileSync(
      join(dir, 'provkey.yaml'),
      [
        'keys:',
        '  app:',
        '    target:',
        `      type: scim`,
        `      url: ${JSON.stringify(scim.url)}`,
        `      applier: { type: http, url: ${JSON.stringify(scim.adminUrl)}, authRef: "env:SCIM_ADMIN_TOKEN" }`,
        '    consumers:',
        `      - { type: entra, servicePrincipalId: ${JSON.stringify(graph.servicePrincipalId)}, jobId: ${JSON.stringify(graph.jobId)}, graphUrl: ${JSON.stringify(graph.graphUrl)}, authorityHost: ${JSON.stringify(emulators.authorityHost)}, disableInstanceDiscovery: true, tls: { caFile: ca.pem }, auth: { method: clientSecret, tenantId: ${JSON.stringify(emulators.tenantId)}, clientId: ${JSON.stringify(ENTRA_SEED.daemonClientId)}, clientSecretRef: "env:ENTRA_DAEMON_SECRET" } }`,
        '',
      ].join('\n'),
    );
    const cli = new ProvkeyCli({ cwd: dir, config: join(dir, 'provkey.yaml'), env: { SCIM_ADMIN_TOKEN: ADMIN_TOKEN, ENTRA_DAEMON_SECRET: ENTRA_SEED.daemonClientSecret } });
    cli.scanner.addSecret(ADMIN_TOKEN, 'SCIM admin token');
    for (const args of [['add', 'app'], ['rotate', 'app']]) {
      const run = await cli.run(args);
      expect(run.code, describeRun(run)).toBe(0);
      const current = await cli.reveal('app');
      expect(graph.savedToken() === current).toBe(true);
      expect(await bearerStatus(scim.url, current)).toBe(200);
    }
    cli.scanner.assertClean();
  });
});

const tenantVars = ['TENANT_ID', 'CLIENT_ID', 'CLIENT_SECRET', 'SERVICE_PRINCIPAL_ID', 'JOB_ID', 'SCIM_URL', 'SCIM_TOKEN'].map((v) => `PROVKEY_TEST_ENTRA_${v}`);
const missing = tenantVars.filter((v) => !process.env[v]);

describe.skipIf(missing.length > 0)(`entra consumer against a real tenant${missing.length ? ` (skipped: ${missing.join(', ')} not set; see docs/entra.md, testing)` : ''}`, () => {
  it('test: with the job\'s own token imported, Entra validates the saved credentials and the job is healthy', async () => {
    const env = Object.fromEntries(tenantVars.map((v) => [v.replace('PROVKEY_TEST_ENTRA_', ''), process.env[v]!])) as Record<string, string>;
    const dir = mkdtempSync(join(tmpdir(), 'provkey-entra-tenant-'));
    try {
      // Read-only against the tenant: the job's current token is imported as the key's current
      // version, and `test` runs the entra consumer's check (validateCredentials with the saved
      // credentials, the job's status, the provisioning logs) with the real permission.
      writeFileSync(join(dir, 'noop.sh'), '#!/bin/sh\ncat >/dev/null\nexit 0\n', { mode: 0o700 });
      writeFileSync(
        join(dir, 'provkey.yaml'),
        [
          'keys:',
          '  app:',
          '    target:',
          '      type: scim',
          `      url: ${JSON.stringify(env.SCIM_URL)}`,
          '      propagationTimeout: 1s',
          '      applier: { type: exec, command: [./noop.sh] }',
          '    consumers:',
          `      - { type: entra, servicePrincipalId: ${JSON.stringify(env.SERVICE_PRINCIPAL_ID)}, jobId: ${JSON.stringify(env.JOB_ID)}, auth: { method: clientSecret, tenantId: ${JSON.stringify(env.TENANT_ID)}, clientId: ${JSON.stringify(env.CLIENT_ID)}, clientSecretRef: "env:PROVKEY_TEST_ENTRA_CLIENT_SECRET" } }`,
          '',
        ].join('\n'),
      );
      const cli = new ProvkeyCli({ cwd: dir, config: join(dir, 'provkey.yaml') });
      cli.scanner.addSecret(env.CLIENT_SECRET!, 'Entra client secret');
      cli.scanner.addSecret(env.SCIM_TOKEN!, 'the job token');
      const imported = await cli.run(['import', 'app'], { input: env.SCIM_TOKEN! });
      expect(imported.code, describeRun(imported)).toBe(0);
      const tested = await cli.run(['test', 'app']);
      expect(tested.code, describeRun(tested)).toBe(0);
      cli.scanner.assertClean();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
