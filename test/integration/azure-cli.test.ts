// End to end: the built CLI with a SCIM key kept in Azure Key Vault, against the real SCIM test
// server (http applier), on both tiers: the third-party emulator pair (when its binaries are
// given; else SKIPPED with the reason) and the Key Vault protocol double. provkey runs as a
// principal holding exactly the permissions docs/azure.md documents.

import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AdapterError } from '../../src/core/errors.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import { ProvkeyCli, bearerStatus, describeRun, eventually } from '../harness/cli.ts';
import { DOCUMENTED_PERMISSIONS, AZURE_TIER_KINDS, azureTierSkipReason, startAzureTier, type AzureTier } from '../harness/servers/azure-fixture.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const KEY = 'entra-scim';

for (const kind of AZURE_TIER_KINDS) {
  const skipped = azureTierSkipReason(kind);
  /** Tests that change permissions, inject faults or issue tokens: the harness can do that to the emulator and the double, never to real Azure. */
  const controlled = it.skipIf(kind === 'real-azure');
  describe.skipIf(skipped !== undefined)(`provkey with an azure store, ${kind} tier${skipped ? ` — SKIPPED: ${skipped}` : ''}`, () => {
    let dir: string;
    let tier: AzureTier;
    let scim: ScimServer;
    let cli: ProvkeyCli;
    let config: string;

    /** The value of a version as Key Vault serves it, or the kind of error reading it gives. */
    async function storedValue(id: string): Promise<string> {
      const store = await tier.openStore();
      try {
        const value = await store.readSecret(KEY, id);
        cli.scanner.addSecret(value, `${KEY} v${id} (from Key Vault)`);
        return value;
      } catch (error) {
        if (error instanceof AdapterError) return `error:${error.kind}`;
        throw error;
      } finally {
        await store.close();
      }
    }
    const labels = async () => (await tier.readState(KEY))?.versions.map((v) => [v.id, v.label]);

    function writeConfig(file: string, storeFields: Record<string, unknown> = {}): string {
      writeFileSync(
        file,
        [
          '# provkey with its keys in Azure Key Vault (YAML accepts the JSON store section)',
          'stores:',
          `  azure: ${JSON.stringify(tier.storeSection(storeFields))}`,
          'keys:',
          `  ${KEY}:`,
          '    store: azure',
          '    rotation: { interval: 30d, grace: 1h }',
          '    target:',
          '      type: scim',
          `      url: ${scim.url}`,
          `      applier: { type: http, url: ${scim.adminUrl}, authRef: env:SCIM_ADMIN_TOKEN }`,
          '      propagationTimeout: 20s',
          '  short-scim:',
          '    store: azure',
          '    rotation: { interval: 10m, grace: 0 }',
          '    target:',
          '      type: scim',
          `      url: ${scim.url}`,
          `      applier: { type: http, url: ${scim.adminUrl}, authRef: env:SCIM_ADMIN_TOKEN }`,
          '      propagationTimeout: 20s',
          '  moved-scim:',
          '    target:',
          '      type: scim',
          `      url: ${scim.url}`,
          `      applier: { type: http, url: ${scim.adminUrl}, authRef: env:SCIM_ADMIN_TOKEN }`,
          '      propagationTimeout: 20s',
          '',
        ].join('\n'),
      );
      return file;
    }

    beforeAll(async () => {
      dir = mkdtempSync(path.join(tmpdir(), `provkey-azure-cli-${kind}-`));
      tier = await startAzureTier(kind);
      await tier.restrict(DOCUMENTED_PERMISSIONS);
      const adminToken = `adm_${randomBytes(24).toString('base64url')}`;
      scim = await startScimServer({ adminToken, propagationMs: 200 });
      config = writeConfig(path.join(dir, 'provkey.yaml'));
      cli = new ProvkeyCli({ cwd: dir, config, env: { ...tier.env, SCIM_ADMIN_TOKEN: adminToken, HOME: dir, IDENTITY_ENDPOINT: undefined, IDENTITY_HEADER: undefined } });
      cli.scanner.addSecret(adminToken, 'SCIM admin token');
      cli.scanner.addSecret(tier.clientSecret, 'Entra client secret');
      if (tier.identity.header) cli.scanner.addSecret(tier.identity.header, 'managed identity header secret');
    });

    afterEach(() => cli.scanner.assertClean());

    afterAll(async () => {
      await scim?.stop();
      await tier?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('add, rotate, status, revoke --previous, drill compromise: the target and Key Vault agree at every step', async () => {
      const added = await cli.run(['add', KEY]);
      expect(added.code, describeRun(added)).toBe(0);
      expect(await labels()).toEqual([['1', 'current']]);
      const v1 = await storedValue('1');
      expect((await tier.readState(KEY))!.versions[0]!.fingerprint).toBe(fingerprint(v1));
      expect(await bearerStatus(scim.url, v1)).toBe(200);
      expect(await cli.reveal(KEY, 'v1 via get --reveal')).toBe(v1);
      // expiresOn from the key's rotation policy (interval 30d + grace 1h), as an app reading Key Vault sees it.
      const lifetime = 30 * 86_400_000 + 3_600_000;
      const first = (await tier.readState(KEY))!.versions;
      expect((await tier.valueVersions(KEY)).map((v) => [v.provkeyVersion, v.exp])).toEqual([['1', seconds(Date.parse(first[0]!.createdAt) + lifetime)]]);

      const rotated = await cli.run(['rotate', KEY]);
      expect(rotated.code, describeRun(rotated)).toBe(0);
      expect(await labels()).toEqual([['1', 'previous'], ['2', 'current']]);
      // The previous version expires when its grace period ends; the new one after interval + grace.
      const second = (await tier.readState(KEY))!.versions;
      expect((await tier.valueVersions(KEY)).map((v) => [v.provkeyVersion, v.exp])).toEqual([
        ['1', seconds(Date.parse(second[0]!.graceUntil!))],
        ['2', seconds(Date.parse(second[1]!.createdAt) + lifetime)],
      ]);
      const v2 = await storedValue('2');
      expect(v2).not.toBe(v1);
      expect(await bearerStatus(scim.url, v2)).toBe(200);
      expect(await bearerStatus(scim.url, v1)).toBe(200);

      const status = await cli.json<{ keys: { name: string; store: string; state: string; current: { fingerprint: string; versionId: string } }[] }>(['status']);
      expect(status.result.code, describeRun(status.result)).toBe(0);
      expect(status.data.keys.find((k) => k.name === KEY)).toMatchObject({ store: 'azure', state: 'ok', current: { fingerprint: fingerprint(v2), versionId: '2' } });

      // revoke: SCIM answers 401 for v1; Key Vault has the version disabled (reads answer 403 → not_found).
      const revoked = await cli.run(['revoke', KEY, '--previous', '--yes']);
      expect(revoked.code, describeRun(revoked)).toBe(0);
      expect(await eventually(() => bearerStatus(scim.url, v1), 401)).toBe(401);
      expect(await storedValue('1')).toBe('error:not_found');
      expect(await labels()).toEqual([['1', 'revoked'], ['2', 'current']]);

      const drill = await cli.json<{ ok: boolean; leakedFingerprint: string; newFingerprint: string }>(['drill', 'compromise', KEY, '--yes', '--rto', '120s']);
      expect(drill.result.code, describeRun(drill.result)).toBe(0);
      expect(drill.data.leakedFingerprint).toBe(fingerprint(v2));
      expect(await labels()).toEqual([['1', 'revoked'], ['2', 'revoked'], ['3', 'current']]);
      expect((await tier.readState(KEY))!.state.claim).toBeUndefined();
      if (tier.double) {
        // Apps reading Key Vault directly see the labels on the value versions (a copy; the state is the truth).
        const valueSecret = `${tier.storeSection().secretPrefix as string}entra--scim`;
        expect(tier.double.versionsOf(valueSecret).map((v) => [v.tags['provkey-version'], v.tags['provkey-label'], v.enabled])).toEqual([
          ['1', 'revoked', false],
          ['2', 'revoked', false],
          ['3', 'current', true],
        ]);
      }
      const v3 = await storedValue('3');
      expect(drill.data.newFingerprint).toBe(fingerprint(v3));
      expect(await bearerStatus(scim.url, v3)).toBe(200);
      expect(await eventually(() => bearerStatus(scim.url, v2), 401)).toBe(401);
      expect(await storedValue('2')).toBe('error:not_found');
      expect((await cli.run(['audit', 'verify'])).code).toBe(0);
    }, 240_000);

    controlled('a live version found past its expiresOn (an overdue rotation) is renewed, so provkey can still test and rotate it', async () => {
      const added = await cli.run(['add', 'short-scim']);
      expect(added.code, describeRun(added)).toBe(0);
      const created = Date.parse((await tier.readState('short-scim'))!.versions[0]!.createdAt);
      expect((await tier.valueVersions('short-scim'))[0]!.exp).toBe(seconds(created + 600_000));
      // Expired an hour ago, as if the rotation were long overdue: Key Vault now refuses the value (403).
      await tier.setValueExpiry('short-scim', '1', Math.floor(Date.now() / 1000) - 3600);
      const tested = await cli.run(['--verbose', 'test', 'short-scim']);
      expect(tested.code, describeRun(tested)).toBe(0);
      expect(tested.stderr).toContain('version 1 of short-scim had expired in Key Vault (its rotation is overdue); expiresOn renewed');
      expect((await tier.valueVersions('short-scim'))[0]!.exp).toBe(seconds(created + 600_000));
      const rotated = await cli.run(['rotate', 'short-scim']);
      expect(rotated.code, describeRun(rotated)).toBe(0);
    });

    it('migrate file → azure and back: every version with its label, values verified by fingerprint', async () => {
      for (const args of [['add', 'moved-scim'], ['rotate', 'moved-scim'], ['revoke', 'moved-scim', '--previous', '--yes'], ['rotate', 'moved-scim']]) {
        const run = await cli.run(args);
        expect(run.code, describeRun(run)).toBe(0);
      }
      const current = await cli.reveal('moved-scim', 'moved v3');
      const toAzure = await cli.run(['migrate', 'moved-scim', '--to', 'azure', '--yes']);
      expect(toAzure.code, describeRun(toAzure)).toBe(0);
      const inAzure = await tier.readState('moved-scim');
      expect(inAzure?.versions.map((v) => v.label)).toEqual(['revoked', 'previous', 'current']);
      expect(await cli.reveal('moved-scim', 'moved v3 from azure')).toBe(current);
      expect(await bearerStatus(scim.url, current)).toBe(200);

      const back = await cli.run(['migrate', 'moved-scim', '--to', 'default', '--yes']);
      expect(back.code, describeRun(back)).toBe(0);
      expect(await tier.readState('moved-scim')).toBeUndefined();
      expect(await cli.reveal('moved-scim', 'moved v3 back in file')).toBe(current);
    }, 240_000);

    controlled('a principal without secrets/set: exit 6 naming the operation and the vault, nothing changed', async () => {
      const before = await tier.readState(KEY);
      await tier.restrict(DOCUMENTED_PERMISSIONS.filter((p) => p !== 'secrets/set'));
      try {
        const run = await cli.run(['rotate', KEY]);
        expect(run.code, describeRun(run)).toBe(6);
        expect(run.stderr).toContain(`the principal may not secrets/set on ${new URL(tier.storeSection().vaultUrl as string).host}`);
        expect(run.stderr).not.toMatch(/\n\s+at /);
      } finally {
        await tier.restrict(DOCUMENTED_PERMISSIONS);
      }
      expect(await tier.readState(KEY)).toEqual(before);
    });

    it('a wrong client secret: exit 6 with what was refused', async () => {
      const run = await cli.run(['status'], { env: { ...tier.env, PROVKEY_TEST_AZURE_CLIENT_SECRET: 'wrong-secret-value' } });
      expect(run.code, describeRun(run)).toBe(6);
      expect(run.stderr).toContain('the identity provider refused the credential');
      expect(run.stderr).toContain('(invalid_client, AADSTS7000215)');
    });

    it('an identity provider that cannot be reached is "unavailable" (exit 5), never "refused"', async () => {
      const unreachable = writeConfig(path.join(dir, 'no-entra.yaml'), { authorityHost: 'https://127.0.0.1:9' });
      const run = await cli.run(['status'], { config: unreachable });
      expect(run.code, describeRun(run)).toBe(5);
      expect(run.stderr).toContain('the identity provider (https://127.0.0.1:9) cannot be reached');
    });

    controlled('managed identity through IDENTITY_ENDPOINT / IDENTITY_HEADER', async () => {
      if (kind === 'double') await tier.restrict(undefined); // the double's MSI principal is not the client above
      try {
        const msi = writeConfig(path.join(dir, 'msi.yaml'), { auth: { method: 'managedIdentity' } });
        const run = await cli.json<{ keys: { name: string; state: string }[] }>(['status'], { config: msi, env: { IDENTITY_ENDPOINT: tier.identity.endpoint, IDENTITY_HEADER: tier.identity.header } });
        expect(run.result.code, describeRun(run.result)).toBe(0);
        // Read through the managed identity's token: 'ok' after the lifecycle test, 'empty' when run alone.
        expect(['ok', 'empty']).toContain(run.data.keys.find((k) => k.name === KEY)?.state);
      } finally {
        await tier.restrict(DOCUMENTED_PERMISSIONS);
      }
    });

    controlled('a token for another audience: exit 6, Key Vault refused the token', async () => {
      // An identity endpoint that hands out a Graph token, as a misconfigured workload might.
      const graphToken =
        kind === 'double'
          ? tier.double!.tokenForAudience(tier.clientId, 'https://graph.microsoft.com')
          : (JSON.parse((await tier.emulators!.entra('POST', '/admin/api/tokens', { clientId: tier.clientId, audience: 'https://graph.microsoft.com' })).body) as { token: string }).token;
      cli.scanner.addSecret(graphToken, 'Graph token');
      const server: Server = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: graphToken, expires_on: String(Math.floor(Date.now() / 1000) + 3600), resource: 'https://vault.azure.net', token_type: 'Bearer' }));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const msi = writeConfig(path.join(dir, 'audience.yaml'), { auth: { method: 'managedIdentity' } });
        const run = await cli.run(['status'], { config: msi, env: { IDENTITY_ENDPOINT: `http://127.0.0.1:${(server.address() as { port: number }).port}/msi/token`, IDENTITY_HEADER: 'h' } });
        expect(run.code, describeRun(run)).toBe(6);
        expect(run.stderr).toContain('Key Vault refused the token for secrets/list');
      } finally {
        server.close();
      }
    });

    controlled('an expired token: exit 6', async () => {
      if (kind === 'double') tier.double!.expireTokens(true);
      else await tier.emulators!.control('clock', { advance: 7200 });
      try {
        const run = await cli.run(['status']);
        expect(run.code, describeRun(run)).toBe(6);
        expect(run.stderr).toContain('Key Vault refused the token');
      } finally {
        if (kind === 'double') tier.double!.expireTokens(false);
        else await tier.emulators!.control('clock', { advance: -7200 });
      }
    });

    controlled('throttling is retried (Retry-After honoured); failures beyond the retries are exit 5 "unavailable"', async () => {
      await tier.throttleNext(2);
      const retried = await cli.run(['status']);
      expect(retried.code, describeRun(retried)).toBe(0);

      await tier.failNext(100);
      try {
        const run = await cli.run(['status']);
        expect(run.code, describeRun(run)).toBe(5);
        expect(run.stderr).toMatch(/Key Vault failed \(500/);
      } finally {
        await tier.failNext(0);
      }
    });

    controlled("the vault's own name with a host override: TLS and the SDK's challenge-resource check stay on", async () => {
      // The emulator routes on the Host header: "emulator" is its default vault, which holds the keys.
      const port = new URL(tier.storeSection().vaultUrl as string).port;
      const pinned = writeConfig(path.join(dir, 'pinned.yaml'), {
        vaultUrl: `https://emulator.vault.azure.net:${port}`,
        emulator: { caFile: (tier.storeSection().emulator as { caFile: string }).caFile, disableInstanceDiscovery: true, connectTo: '127.0.0.1' },
      });
      const run = await cli.json<{ keys: { name: string; state: string; current: { versionId: string } | null }[] }>(['status', KEY], { config: pinned });
      expect(run.result.code, describeRun(run.result)).toBe(0);
      expect(run.data.keys[0]).toMatchObject({ name: KEY, state: 'ok', current: { versionId: '3' } });
    });

    it.runIf(kind === 'double')('a Retry-After of an hour waits at most maxRetryDelay; a hung vault times out: exit 5', async () => {
      const patient = writeConfig(path.join(dir, 'patient.yaml'), { maxRetryDelay: '1s', retries: 2, timeout: '1s' });
      tier.double!.throttleNext(2, 3600);
      const throttled = await cli.run(['status'], { config: patient, timeoutMs: 60_000 });
      expect(throttled.code, describeRun(throttled)).toBe(0);

      tier.double!.stallNext(100);
      try {
        const hung = await cli.run(['status'], { config: patient, timeoutMs: 60_000 });
        expect(hung.code, describeRun(hung)).toBe(5);
        expect(hung.stderr).toMatch(/\[azure\] secrets\/list of .* no answer within 1000 ms/);
      } finally {
        tier.double!.stallNext(0);
      }
    });

    it('certificate auth: a missing, malformed or doubly given certificate is a config error naming the field (exit 2)', async () => {
      const tenantId = (tier.storeSection().auth as { tenantId: string }).tenantId;
      const notPem = path.join(dir, 'not-a-cert.pem');
      writeFileSync(notPem, 'this is not a PEM file\n', { mode: 0o600 });
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ certificatePath: path.join(dir, 'missing.pem') }, `stores.azure.auth.certificatePath: cannot read ${path.join(dir, 'missing.pem')} (ENOENT)`],
        [{ certificatePath: notPem }, 'stores.azure.auth.certificatePath (' + notPem + '): must be a PEM holding the certificate and its private key'],
        [{ certificateRef: `file:${notPem}` }, 'stores.azure.auth.certificateRef: must be a PEM holding the certificate and its private key'],
        [{ certificatePath: notPem, certificateRef: `file:${notPem}` }, 'stores.azure.auth: give exactly one of certificatePath and certificateRef'],
      ];
      for (const [fields, message] of cases) {
        const file = writeConfig(path.join(dir, 'cert-bad.yaml'), { auth: { method: 'clientCertificate', tenantId, clientId: tier.clientId, ...fields } });
        const run = await cli.run(['status', KEY], { config: file });
        expect(run.code, describeRun(run)).toBe(2);
        expect(run.stderr).toContain(message);
        expect(run.stderr).not.toMatch(/\n\s+at /);
      }
    });

    it.runIf(kind === 'emulator')("certificate auth (private_key_jwt) against entra-emulator: a registered certificate gets a token by path or by reference; an unregistered one is exit 6", async () => {
      const tenantId = (tier.storeSection().auth as { tenantId: string }).tenantId;
      const makePem = (name: string) => {
        const key = path.join(dir, `${name}.key`);
        const cert = path.join(dir, `${name}.crt`);
        const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=provkey-${name}`], { encoding: 'utf8' });
        if (made.status !== 0) throw new Error(`openssl: ${made.stderr}`);
        const keyPem = readFileSync(key, 'utf8');
        cli.scanner.addSecret(keyPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), `${name} private key`);
        const pem = path.join(dir, `${name}.pem`);
        writeFileSync(pem, readFileSync(cert, 'utf8') + keyPem, { mode: 0o600 });
        return { pem, certPem: readFileSync(cert, 'utf8') };
      };
      const registered = makePem('registered');
      const stranger = makePem('stranger');
      const answer = await tier.emulators!.entra('POST', `/admin/api/apps/${tier.clientId}/keyCredentials`, { publicKey: registered.certPem, displayName: 'provkey test certificate' });
      expect(answer.status, answer.body).toBe(201);

      for (const fields of [{ certificatePath: registered.pem }, { certificateRef: `file:${registered.pem}` }]) {
        const file = writeConfig(path.join(dir, 'cert.yaml'), { auth: { method: 'clientCertificate', tenantId, clientId: tier.clientId, ...fields } });
        const run = await cli.json<{ keys: { name: string; state: string }[] }>(['status', KEY], { config: file });
        expect(run.result.code, describeRun(run.result)).toBe(0);
        expect(['ok', 'empty']).toContain(run.data.keys[0]?.state);
      }
      const refused = await cli.run(['status', KEY], { config: writeConfig(path.join(dir, 'cert-stranger.yaml'), { auth: { method: 'clientCertificate', tenantId, clientId: tier.clientId, certificatePath: stranger.pem } }) });
      expect(refused.code, describeRun(refused)).toBe(6);
      expect(refused.stderr).toContain('the identity provider refused the credential');
      expect(refused.stderr).toContain('AADSTS700027');
    });

    it('limits Key Vault would refuse are refused by provkey first, naming the key', async () => {
      const store = await tier.openStore();
      try {
        const big = 'x'.repeat(25 * 1024 + 1);
        const error = await store.addVersion('too-big', undefined, big, { label: 'current', fingerprint: fingerprint(big), createdAt: new Date().toISOString(), labelledAt: new Date().toISOString(), origin: 'generated' }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(AdapterError);
        expect((error as AdapterError).message).toBe(`[azure] the value of too-big is ${25 * 1024 + 1} bytes; Key Vault stores at most ${25 * 1024} bytes per secret value`);
        const long = await store.read('k'.repeat(130)).catch((e: unknown) => e);
        expect((long as AdapterError).message).toMatch(/^\[azure\] key "k+" is too long for Key Vault: its state secret .* the limit is 127/);
      } finally {
        await store.close();
      }
    });
  });
}

/** Key Vault's whole-second timestamp of an instant, rounded up as the store writes expiresOn. */
function seconds(ms: number): number {
  return Math.ceil(ms / 1000);
}
