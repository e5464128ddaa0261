// Crash tests on the azure store: provkey is killed with SIGKILL (PROVKEY_FAULT) at every step
// of the rotation protocol, and the next run must converge with no lockout, exactly as on the
// file store (crash-rotate.test.ts), with the key's state in the append-only chain of
// src/stores/azure/chain.ts. Runs on the Key Vault double always and on the emulator pair
// when its binaries are given (else SKIPPED with the reason).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bearerStatus, describeRun, eventually, ProvkeyCli } from '../harness/cli.ts';
import { DOCUMENTED_PERMISSIONS, AZURE_TIER_KINDS, azureTierSkipReason, startAzureTier, type AzureTier } from '../harness/servers/azure-fixture.ts';
import { startScimServer, type ScimServer } from '../harness/servers/scim.ts';
import { ADMIN_TOKEN, CONVERGENCE, expectKilled, FAULT_POINTS, KEY, MODES, type HistoryJson, type ResultsJson, type StatusJson } from './fixture.ts';


for (const kind of AZURE_TIER_KINDS) {
  const skipped = azureTierSkipReason(kind);
  describe.skipIf(skipped !== undefined)(`SIGKILL during rotate on the azure store, ${kind} tier${skipped ? ` — SKIPPED: ${skipped}` : ''}`, () => {
    let tier: AzureTier;
    let server: ScimServer;
    const dirs: string[] = [];
    let cli: ProvkeyCli | undefined;

    beforeAll(async () => {
      [tier, server] = await Promise.all([startAzureTier(kind), startScimServer({ adminToken: ADMIN_TOKEN, propagationMs: 100 })]);
      await tier.restrict(DOCUMENTED_PERMISSIONS);
    });
    afterEach(() => {
      cli?.scanner.assertClean();
      cli = undefined;
    });
    afterAll(async () => {
      await server?.stop();
      await tier?.stop();
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    });

    /** A fresh directory and secret prefix per test: every test starts from an empty key. */
    function keyFixture(mode: (typeof MODES)[number], n: number): { cli: ProvkeyCli; key: string } {
      const dir = mkdtempSync(join(tmpdir(), 'provkey-crash-azure-'));
      dirs.push(dir);
      const applier = mode.applier === 'http' ? `{ type: http, url: ${JSON.stringify(server.adminUrl)}, authRef: "env:SCIM_ADMIN_TOKEN" }` : `{ type: exec, command: ${JSON.stringify(server.hookCommand)} }`;
      const section = tier.storeSection({ secretPrefix: `${tier.storeSection().secretPrefix}c${n}${mode.overlap ? 'o' : 'n'}-` });
      writeFileSync(
        join(dir, 'provkey.yaml'),
        [
          'stores:',
          `  azure: ${JSON.stringify(section)}`,
          'keys:',
          `  ${KEY}:`,
          '    store: azure',
          `    rotation: { interval: 30d, grace: ${mode.grace} }`,
          '    target:',
          '      type: scim',
          `      url: ${JSON.stringify(server.url)}`,
          '      propagationTimeout: 2s',
          '      requestTimeout: 5s',
          `      applier: ${applier}`,
          '',
        ].join('\n'),
      );
      const c = new ProvkeyCli({ cwd: dir, config: join(dir, 'provkey.yaml'), env: { ...tier.env, SCIM_ADMIN_TOKEN: ADMIN_TOKEN, HOME: dir } });
      c.scanner.addSecret(ADMIN_TOKEN, 'SCIM admin token');
      c.scanner.addSecret(tier.clientSecret, 'Entra client secret');
      cli = c;
      return { cli: c, key: section.secretPrefix as string };
    }

    async function learnStoredSecrets(c: ProvkeyCli, prefix: string): Promise<void> {
      const store = await tier.openStore({ secretPrefix: prefix });
      try {
        const record = await store.read(KEY);
        for (const v of record?.versions ?? []) {
          const value = await store.readSecret(KEY, v.id).catch(() => null);
          if (value !== null) c.scanner.addSecret(value, `${KEY} v${v.id} (${v.label}, from Key Vault)`);
        }
      } finally {
        await store.close();
      }
    }

    let n = 0;
    describe.each(MODES)('$name', (mode) => {
      it.each(FAULT_POINTS)('killed at %s: the next rotate converges with no lockout', async (point) => {
        const { cli: c, key: prefix } = keyFixture(mode, n++);
        const added = await c.run(['add', KEY]);
        expect(added.code, describeRun(added)).toBe(0);
        const old = await c.reveal(KEY, `${KEY} before the crash`);

        const crashed = await c.run(['rotate', KEY], { env: { PROVKEY_FAULT: point } });
        expectKilled(crashed);
        await learnStoredSecrets(c, prefix);
        const { data: between } = await c.json<StatusJson>(['status', KEY]);
        // After finish without overlap a revoke claim stays until the old version is proven rejected.
        expect(between.keys[0]?.state).toBe(point === 'after-finish' && mode.overlap ? 'ok' : 'rotating');

        const { result: resumed, data } = await c.json<ResultsJson>(['rotate', KEY]);
        expect(resumed.code, describeRun(resumed)).toBe(0);
        // Killed after a no-overlap finish, only the old version's proof was left: finishing it completes that rotation.
        const outcome = point === 'after-finish' && !mode.overlap ? 'resumed' : CONVERGENCE[point].outcome;
        expect(data.results[0]).toMatchObject({ key: KEY, ok: true, exitCode: 0, outcome });
        await learnStoredSecrets(c, prefix);

        // Converged: one current version, nothing pending, the target accepting it, tests and audit passing.
        const { result: historyRun, data: history } = await c.json<HistoryJson>(['history', KEY]);
        expect(historyRun.code, describeRun(historyRun)).toBe(0);
        const labels = history.versions.map((v) => v.label);
        expect(labels.filter((l) => l === 'current'), labels.join(', ')).toHaveLength(1);
        expect(labels).not.toContain('pending');
        const current = await c.reveal(KEY, `${KEY} current`);
        expect(current).not.toBe(old);
        expect(await bearerStatus(server.url, current)).toBe(200);
        if (mode.overlap) expect(await bearerStatus(server.url, old)).toBe(200);
        else expect(await eventually(() => bearerStatus(server.url, old), 401)).toBe(401);
        const expectedEvent = CONVERGENCE[point].event;
        if (expectedEvent) expect(history.events.map((e) => e.event)).toContain(expectedEvent);
        expect((await c.run(['test', KEY])).code).toBe(0);
        expect((await c.run(['audit', 'verify'])).code).toBe(0);
      }, 180_000);
    });
  });
}
