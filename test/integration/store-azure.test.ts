// The azure store's SecretStore contract, run twice: against the third-party emulator pair
// (when PROVKEY_TEST_AZURE_KV_EMULATOR / PROVKEY_TEST_ENTRA_EMULATOR name its binaries; else
// reported SKIPPED with the reason) and against the Key Vault protocol double (always). Both
// run as a principal holding exactly the permissions docs/azure.md documents.

import { afterAll, beforeAll, describe } from 'vitest';
import { describeStoreContract } from '../contract/store-contract.js';
import { DOCUMENTED_PERMISSIONS, emulatorTierSkipReason, startAzureTier, type AzureTier } from '../harness/servers/azure-fixture.ts';

const skip = emulatorTierSkipReason();

for (const kind of ['emulator', 'double'] as const) {
  const skipped = kind === 'emulator' ? skip : undefined;
  describe.skipIf(skipped !== undefined)(`azure store, ${kind} tier${skipped ? ` — SKIPPED: ${skipped}` : ''}`, () => {
    let tier: AzureTier;
    beforeAll(async () => {
      tier = await startAzureTier(kind);
      await tier.restrict(DOCUMENTED_PERMISSIONS);
    });
    afterAll(async () => tier?.stop());
    describeStoreContract(`azure ${kind}`, async () => ({ store: await tier.openStore() }));
  });
}
