// The azure store's SecretStore contract, run twice: against the third-party emulator pair
// (when PROVKEY_TEST_AZURE_KV_EMULATOR / PROVKEY_TEST_ENTRA_EMULATOR name its binaries; else
// reported SKIPPED with the reason) and against the Key Vault protocol double (always). Both
// run as a principal holding exactly the permissions docs/azure.md documents.

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdapterError } from '../../src/core/errors.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import type { NewVersionMeta } from '../../src/stores/store.js';
import { checkTags } from '../../src/stores/azure/names.js';
import { describeStoreContract } from '../contract/store-contract.js';
import { DOCUMENTED_PERMISSIONS, AZURE_TIER_KINDS, azureTierSkipReason, startAzureTier, type AzureTier } from '../harness/servers/azure-fixture.ts';


// The double also runs with its strict clock and the store without a settle
// (emulator.strictlyIncreasingCreatedOn): the mode the fault matrix uses must hold up too.
for (const { kind, strictClock } of [...AZURE_TIER_KINDS.map((kind) => ({ kind, strictClock: false })), { kind: 'double' as const, strictClock: true }]) {
  const skipped = azureTierSkipReason(kind);
  const tierName = strictClock ? `${kind} (strict clock, no settle)` : kind;
  describe.skipIf(skipped !== undefined)(`azure store, ${tierName} tier${skipped ? ` — SKIPPED: ${skipped}` : ''}`, () => {
    let tier: AzureTier;
    beforeAll(async () => {
      tier = await startAzureTier(kind, { strictClock });
      await tier.restrict(DOCUMENTED_PERMISSIONS);
    });
    afterAll(async () => tier?.stop());
    describeStoreContract(`azure ${tierName}`, async () => ({ store: await tier.openStore() }));

    it('a deleted-but-recoverable name is reported as such, never as a bare conflict', async () => {
      const store = await tier.openStore({ purgeOnDelete: false });
      const key = `softdel-${randomBytes(4).toString('hex')}`;
      try {
        const first = secret();
        await store.addVersion(key, undefined, first, meta(first));
        await store.deleteKey(key); // soft delete only: the names stay reserved
        expect(await store.read(key)).toBeUndefined();
        const again = secret();
        const error = await store.addVersion(key, undefined, again, meta(again)).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(AdapterError);
        expect((error as AdapterError).message).toMatch(/secrets\/set of .* the secret \S+ is deleted but recoverable \(soft delete\)\. Recover it .* or purge it/);
        expect((error as AdapterError).exitCode).not.toBe(0);
      } finally {
        // Purge what is left so the test leaves nothing behind.
        const purging = await tier.openStore();
        await purging.deleteKey(key).catch(() => undefined);
        await purging.close();
        await store.close();
      }
    });

    it.skipIf(kind === 'real-azure' || strictClock)('emulator.strictlyIncreasingCreatedOn on a server that does not keep it (two versions in one second): the store stops, it never decides a fork unsettled', async () => {
      const key = `strict-${randomBytes(4).toString('hex')}`;
      const emulator = tier.storeSection().emulator as Record<string, unknown>;
      const store = await tier.openStore({ emulator: { ...emulator, strictlyIncreasingCreatedOn: true } });
      await tier.freezeClock(true);
      try {
        const value = secret();
        const added = await store.addVersion(key, undefined, value, meta(value));
        const error = await store.update(key, added.record.revision, { versions: added.record.versions, state: added.record.state }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(AdapterError);
        expect((error as AdapterError).message).toMatch(/emulator\.strictlyIncreasingCreatedOn is set, but \S+ gave two versions of \S+-state the same createdOn second/);
        expect((error as AdapterError).exitCode).toBe(2);
      } finally {
        await tier.freezeClock(false);
        await store.close();
        const cleanup = await tier.openStore();
        await cleanup.deleteKey(key).catch(() => undefined);
        await cleanup.close();
      }
    });
  });
}

describe('azure store limits (Key Vault refuses more than some emulators do)', () => {
  it('at most 15 tags, tag names 512 and values 256 characters', () => {
    const many = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`t${i}`, 'v']));
    expect(() => checkTags('app', many)).toThrow('[azure] app: 16 tags, Key Vault allows 15');
    expect(() => checkTags('app', { ['n'.repeat(513)]: 'v' })).toThrow(/tag name .* longer than 512/);
    expect(() => checkTags('app', { name: 'v'.repeat(257) })).toThrow('[azure] app: tag "name" is longer than 256 characters');
    expect(() => checkTags('app', { name: 'v'.repeat(256) })).not.toThrow();
  });
});

function secret(): string {
  return `pk_softdel_${randomBytes(12).toString('hex')}`;
}

function meta(value: string): NewVersionMeta {
  const at = new Date().toISOString();
  return { label: 'current', fingerprint: fingerprint(value), createdAt: at, labelledAt: at, origin: 'generated' };
}
