import { readFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import type { LookupFunction } from 'node:net';
import type { SecretClientOptions } from '@azure/keyvault-secrets';
import { azureError } from './errors.js';
import type { AzureSettings } from './settings.js';

type PipelinePolicy = NonNullable<SecretClientOptions['additionalPolicies']>[number]['policy'];

/** HTTP options of the identity and Key Vault clients: TLS trust, retries, the Retry-After bound, the host override. */
export async function transportOptions(s: AzureSettings): Promise<{ identity: Record<string, unknown>; vault: SecretClientOptions }> {
  const ca = s.emulator?.caFile === undefined ? undefined : await readCaFile(s.emulator.caFile, s.storeName);
  const transport = {
    ...(ca === undefined ? {} : { tlsOptions: { ca } }),
    retryOptions: { maxRetries: s.retries, retryDelayInMs: 500, maxRetryDelayInMs: s.maxRetryDelayMs },
    additionalPolicies: [{ policy: retryAfterCap(s.maxRetryDelayMs), position: 'perRetry' as const }],
  };
  const identity = {
    ...transport,
    ...(s.authorityHost === undefined ? {} : { authorityHost: s.authorityHost }),
    ...(s.emulator?.disableInstanceDiscovery ? { disableInstanceDiscovery: true } : {}),
  };
  // Host override (emulator only): the vault's own name stays in the URL, so TLS checks its
  // certificate and the SDK's challenge-resource check both see *.vault.azure.net.
  const connectTo = s.emulator?.connectTo;
  const pinned = connectTo === undefined ? {} : { agent: new Agent({ keepAlive: true, ...(ca === undefined ? {} : { ca }), lookup: pinnedLookup(connectTo) }) };
  return {
    identity,
    vault: {
      ...transport,
      ...pinned,
      ...(s.emulator?.disableChallengeResourceVerification ? { disableChallengeResourceVerification: true } : {}),
    },
  };
}

/** A DNS lookup that answers every name with `address` (never asks a resolver). */
function pinnedLookup(address: string): LookupFunction {
  const family = address.includes(':') ? 6 : 4;
  return (_host, options, callback) => {
    if ((options as { all?: boolean }).all) (callback as unknown as (e: null, all: { address: string; family: number }[]) => void)(null, [{ address, family }]);
    else callback(null, address, family);
  };
}

/**
 * The SDK waits as long as a 429/503 answer's Retry-After says, without a bound: a vault (or
 * proxy) asking for an hour would hang a cron run. This per-attempt policy shortens any
 * Retry-After to `maxMs` before the retry policy reads it; the number of retries stays bounded.
 */
function retryAfterCap(maxMs: number): PipelinePolicy {
  return {
    name: 'provkeyRetryAfterCap',
    async sendRequest(request, next) {
      const response = await next(request);
      if (response.status !== 429 && response.status !== 503) return response;
      for (const [header, unitMs] of [['retry-after-ms', 1], ['x-ms-retry-after-ms', 1], ['retry-after', 1000]] as const) {
        const raw = response.headers.get(header);
        if (raw === undefined) continue;
        const asNumber = Number(raw);
        const waitMs = Number.isFinite(asNumber) ? asNumber * unitMs : Date.parse(raw) - Date.now();
        // The SDK obeys the first of these headers present, so only that one matters.
        if (!(waitMs <= maxMs)) {
          response.headers.delete(header);
          response.headers.set('retry-after-ms', String(maxMs));
        }
        break;
      }
      return response;
    },
  };
}

async function readCaFile(file: string, storeName: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw azureError('invalid', `stores.${storeName}.emulator.caFile: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
