// End to end: the built CLI with an LDAP key kept in Azure Key Vault, against a real OpenLDAP
// slapd, on both tiers (the emulator pair when its binaries are given, else SKIPPED with the
// reason; the Key Vault protocol double always). After every command the directory is asked
// what happened (a bind: 0 accepted, 49 rejected) and Key Vault is read back.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'ldapts';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AdapterError } from '../../src/core/errors.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import { ProvkeyCli, describeRun } from '../harness/cli.ts';
import { DOCUMENTED_PERMISSIONS, AZURE_TIER_KINDS, azureTierSkipReason, startAzureTier, type AzureTier } from '../harness/servers/azure-fixture.ts';
import { startSlapd, type SlapdServer } from '../harness/servers/slapd.ts';

const KEY = 'ldap-provisioner';

async function bindAs(server: SlapdServer, password: string): Promise<number> {
  const client = new Client({ url: server.ldapUrl, timeout: 5000 });
  await client.startTLS({ ca: [server.caPem], host: '127.0.0.1' });
  try {
    await client.bind(server.serviceDn, password);
    return 0;
  } catch (error) {
    return (error as { code: number }).code;
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

for (const kind of AZURE_TIER_KINDS) {
  const skipped = azureTierSkipReason(kind);
  describe.skipIf(skipped !== undefined)(`provkey with an LDAP key in the azure store, ${kind} tier${skipped ? ` — SKIPPED: ${skipped}` : ''}`, () => {
    let dir: string;
    let config: string;
    let tier: AzureTier;
    let srv: SlapdServer;
    let cli: ProvkeyCli;

    const labels = async () => (await tier.readState(KEY))?.versions.map((v) => [v.id, v.label]);
    async function current(): Promise<{ id: string; value: string }> {
      const record = (await tier.readState(KEY))!;
      const version = record.versions.filter((v) => v.label === 'current');
      expect(version).toHaveLength(1);
      const store = await tier.openStore();
      try {
        const value = await store.readSecret(KEY, version[0]!.id);
        cli.scanner.addSecret(value, `${KEY} v${version[0]!.id} (from Key Vault)`);
        expect(version[0]!.fingerprint).toBe(fingerprint(value));
        return { id: version[0]!.id, value };
      } finally {
        await store.close();
      }
    }
    async function readKind(id: string): Promise<string> {
      const store = await tier.openStore();
      try {
        await store.readSecret(KEY, id);
        return 'readable';
      } catch (error) {
        return error instanceof AdapterError ? error.kind : 'other';
      } finally {
        await store.close();
      }
    }

    function writeConfig(apply: string): void {
      writeFileSync(
        config,
        [
          'stores:',
          `  azure: ${JSON.stringify(tier.storeSection())}`,
          'keys:',
          `  ${KEY}:`,
          '    store: azure',
          '    format: { type: password, length: 24 }',
          '    rotation: { interval: 30d, grace: 0 }',
          '    target:',
          '      type: ldap',
          `      urls: [${srv.ldapUrl}]`,
          `      tls: { caFile: ${srv.caFile} }`,
          `      bindDn: "${srv.serviceDn}"`,
          `      searchBase: "${srv.peopleDn}"`,
          `      apply: ${apply}`,
          '      propagationTimeout: 5s',
          '',
        ].join('\n'),
      );
    }

    beforeAll(async () => {
      dir = mkdtempSync(path.join(tmpdir(), `provkey-ldap-azure-${kind}-`));
      config = path.join(dir, 'provkey.yaml');
      [tier, srv] = await Promise.all([startAzureTier(kind), startSlapd()]);
      await tier.restrict(DOCUMENTED_PERMISSIONS);
      writeFileSync(path.join(dir, 'ldap-admin.pw'), `${srv.provkeyAdminPassword}\n`, { mode: 0o600 });
      writeConfig('{ mode: self }');
      cli = new ProvkeyCli({ cwd: dir, config, env: { ...tier.env, HOME: dir } });
      cli.scanner.addSecret(tier.clientSecret, 'Entra client secret');
      cli.scanner.addSecret(srv.servicePassword, 'slapd: initial service password');
      cli.scanner.addSecret(srv.provkeyAdminPassword, 'slapd: provkey-admin password');
      cli.scanner.addSecret(srv.adminPassword, 'slapd: rootdn password');
    });

    afterEach(() => cli.scanner.assertClean());

    afterAll(async () => {
      await Promise.all([srv?.stop(), tier?.stop()]);
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('import, rotate (self), status, revoke --current, add (admin), drill compromise, migrate azure ↔ file: slapd and Key Vault agree at every step', async () => {
      const initial = srv.servicePassword;
      const imported = await cli.run(['import', KEY], { input: `${initial}\n` });
      expect(imported.code, describeRun(imported)).toBe(0);
      expect(await labels()).toEqual([['1', 'current']]);
      expect(await current()).toEqual({ id: '1', value: initial });

      const rotated = await cli.run(['rotate', KEY]);
      expect(rotated.code, describeRun(rotated)).toBe(0);
      expect(await labels()).toEqual([['1', 'revoked'], ['2', 'current']]);
      const v2 = await current();
      expect(v2.value).toHaveLength(24);
      expect(await bindAs(srv, v2.value)).toBe(0);
      expect(await bindAs(srv, initial)).toBe(49);
      expect(await readKind('1')).toBe('not_found');

      const status = await cli.json<{ keys: { name: string; store: string; target: string; state: string; current: { versionId: string } | null }[] }>(['status', KEY]);
      expect(status.result.code, describeRun(status.result)).toBe(0);
      expect(status.data.keys[0]).toMatchObject({ name: KEY, store: 'azure', target: 'ldap', state: 'ok', current: { versionId: '2' } });

      const revoked = await cli.run(['revoke', KEY, '--current', '--yes']);
      expect(revoked.code, describeRun(revoked)).toBe(0);
      expect(await bindAs(srv, v2.value)).toBe(49);
      expect(await labels()).toEqual([['1', 'revoked'], ['2', 'revoked']]);
      expect(await readKind('2')).toBe('not_found');

      writeConfig(`{ mode: admin, adminDn: "${srv.provkeyAdminDn}", adminPasswordRef: "file:ldap-admin.pw" }`);
      const added = await cli.run(['add', KEY]);
      expect(added.code, describeRun(added)).toBe(0);
      const v3 = await current();
      expect(v3.id).toBe('3');
      expect(await bindAs(srv, v3.value)).toBe(0);

      const drill = await cli.json<{ ok: boolean; leakedFingerprint: string; newFingerprint: string; containmentProven?: boolean }>(['drill', 'compromise', KEY, '--yes', '--rto', '120s']);
      expect(drill.result.code, describeRun(drill.result)).toBe(0);
      expect(drill.data).toMatchObject({ ok: true, leakedFingerprint: fingerprint(v3.value), containmentProven: true });
      expect(await labels()).toEqual([['1', 'revoked'], ['2', 'revoked'], ['3', 'revoked'], ['4', 'current']]);
      const v4 = await current();
      expect(drill.data.newFingerprint).toBe(fingerprint(v4.value));
      expect(await bindAs(srv, v4.value)).toBe(0);
      expect(await bindAs(srv, v3.value)).toBe(49);
      expect(await readKind('3')).toBe('not_found');

      // migrate azure → the embedded file store → azure: every version with its label, the live
      // password verified by fingerprint, each source retired, and the key still rotates.
      const toFile = await cli.run(['migrate', KEY, '--to', 'default', '--yes']);
      expect(toFile.code, describeRun(toFile)).toBe(0);
      expect(await tier.readState(KEY)).toBeUndefined();
      expect(await cli.reveal(KEY, `${KEY} v4 from the file store`)).toBe(v4.value);
      const back = await cli.run(['migrate', KEY, '--to', 'azure', '--yes']);
      expect(back.code, describeRun(back)).toBe(0);
      expect((await tier.readState(KEY))?.versions.map((v) => v.label)).toEqual(['revoked', 'revoked', 'revoked', 'current']);
      expect((await current()).value).toBe(v4.value);
      expect(await bindAs(srv, v4.value)).toBe(0);
      const rotatedAgain = await cli.run(['rotate', KEY]);
      expect(rotatedAgain.code, describeRun(rotatedAgain)).toBe(0);
      const v5 = await current();
      expect(await bindAs(srv, v5.value)).toBe(0);
      expect(await bindAs(srv, v4.value)).toBe(49);
    }, 300_000);
  });
}
