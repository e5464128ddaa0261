// `provkey migrate` between OpenBao (vault store) and Azure Key Vault (azure store), both ways,
// with the built CLI: every version keeps its label, live values are verified by fingerprint
// before the source is retired. Azure runs on the emulator pair when its binaries are given
// (else SKIPPED with the reason) and on the Key Vault protocol double always.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ProvkeyCli, bearerStatus, describeRun } from '../harness/cli.ts';
import { DOCUMENTED_PERMISSIONS, AZURE_TIER_KINDS, azureTierSkipReason, startAzureTier, type AzureTier } from '../harness/servers/azure-fixture.ts';
import { startOpenBao, type OpenBaoServer } from '../harness/servers/openbao.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MOUNT = 'secret';
const KEY = 'vault-scim';

for (const kind of AZURE_TIER_KINDS) {
  const skipped = azureTierSkipReason(kind);
  describe.skipIf(skipped !== undefined)(`provkey migrate vault ↔ azure, ${kind} tier${skipped ? ` — SKIPPED: ${skipped}` : ''}`, () => {
    const prefix = `mig-${randomBytes(3).toString('hex')}`;
    let dir: string;
    let tier: AzureTier;
    let bao: OpenBaoServer;
    let scim: ScimServer;
    let cli: ProvkeyCli;

    beforeAll(async () => {
      dir = mkdtempSync(path.join(tmpdir(), `provkey-migrate-azure-${kind}-`));
      [tier, bao] = await Promise.all([startAzureTier(kind), startOpenBao()]);
      await tier.restrict(DOCUMENTED_PERMISSIONS);
      const policy = readFileSync(path.join(repoRoot, 'docs/vault-policy.hcl'), 'utf8').replace(/(path "[^"]+\/)provkey\//g, `$1${prefix}/`);
      const token = await bao.createPolicyToken('provkey', policy, { ttl: '1h' });
      const adminToken = `adm_${randomBytes(24).toString('base64url')}`;
      scim = await startScimServer({ adminToken, propagationMs: 200 });
      const config = path.join(dir, 'provkey.yaml');
      writeFileSync(
        config,
        [
          'stores:',
          '  vault:',
          '    type: vault',
          `    address: ${bao.addr}`,
          `    mount: ${MOUNT}`,
          `    prefix: ${prefix}`,
          `  azure: ${JSON.stringify(tier.storeSection())}`,
          'keys:',
          `  ${KEY}:`,
          '    store: vault',
          '    target:',
          '      type: scim',
          `      url: ${scim.url}`,
          `      applier: { type: http, url: ${scim.adminUrl}, authRef: env:SCIM_ADMIN_TOKEN }`,
          '      propagationTimeout: 20s',
          '',
        ].join('\n'),
      );
      cli = new ProvkeyCli({ cwd: dir, config, env: { ...tier.env, VAULT_TOKEN: token, SCIM_ADMIN_TOKEN: adminToken, HOME: dir, VAULT_ADDR: undefined } });
      for (const [value, what] of [[token, 'Vault token'], [bao.rootToken, 'Vault root token'], [adminToken, 'SCIM admin token'], [tier.clientSecret, 'Entra client secret']] as const) cli.scanner.addSecret(value, what);
    });

    afterEach(() => cli.scanner.assertClean());

    afterAll(async () => {
      await scim?.stop();
      await bao?.stop();
      await tier?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('vault → azure → vault: labels kept, the live value verified and still accepted, each source retired', async () => {
      for (const args of [['add', KEY], ['rotate', KEY], ['revoke', KEY, '--previous', '--yes'], ['rotate', KEY]]) {
        const run = await cli.run(args);
        expect(run.code, describeRun(run)).toBe(0);
      }
      const current = await cli.reveal(KEY, 'current in vault');

      const toAzure = await cli.run(['migrate', KEY, '--to', 'azure', '--yes']);
      expect(toAzure.code, describeRun(toAzure)).toBe(0);
      expect((await tier.readState(KEY))?.versions.map((v) => v.label)).toEqual(['revoked', 'previous', 'current']);
      expect((await bao.api('GET', `${MOUNT}/data/${prefix}/${KEY}/state`)).status).toBe(404);
      expect(await cli.reveal(KEY, 'current in azure')).toBe(current);
      // The moved key keeps working: a rotation on Azure.
      const rotated = await cli.run(['rotate', KEY]);
      expect(rotated.code, describeRun(rotated)).toBe(0);
      const newer = await cli.reveal(KEY, 'rotated in azure');
      expect(await bearerStatus(scim.url, newer)).toBe(200);

      const back = await cli.run(['migrate', KEY, '--to', 'vault', '--yes']);
      expect(back.code, describeRun(back)).toBe(0);
      expect(await tier.readState(KEY)).toBeUndefined();
      const state = await bao.api('GET', `${MOUNT}/data/${prefix}/${KEY}/state`);
      expect(state.body.data.data.versions.map((v: { label: string }) => v.label)).toEqual(['revoked', 'previous', 'previous', 'current']);
      expect(await cli.reveal(KEY, 'current back in vault')).toBe(newer);
    }, 300_000);
  });
}
