// One Azure Key Vault store fixture for every test that needs one, over any tier:
//   - 'emulator':   the third-party emulator pair (servers/azure-emulators.ts), when its binaries are given;
//   - 'double':     the protocol double (../azure-keyvault-double.ts), always;
//   - 'real-azure': a real vault, when PROVKEY_TEST_AZURE_VAULT_URL and AZURE_TENANT_ID /
//                   AZURE_CLIENT_ID / AZURE_CLIENT_SECRET are given (the principal must hold
//                   exactly the documented permissions: the harness cannot change real RBAC,
//                   inject faults or issue tokens there, so the tests that need those skip).
// It hands out a configured store section (for provkey.yaml or the schema), the environment the
// CLI needs, an opened store, and a way to read what is stored, so a matrix of adapters (fault
// simulation, crash tests) can add Azure as one entry.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as v from 'valibot';
import { storeSchema, type AzureStoreConfig } from '../../../src/config/schema.js';
import type { KeyRecord } from '../../../src/core/model.js';
import type { AdapterContext } from '../../../src/stores/context.js';
import type { SecretStore } from '../../../src/stores/store.js';
import { createAzureStore, type AzureStoreInternals } from '../../../src/stores/azure.js';
import { secretNames } from '../../../src/stores/azure/names.js';
import { startKeyVaultDouble, type KeyVaultDouble } from '../azure-keyvault-double.ts';
import { azureEmulatorBinaries, ENTRA_SEED, httpsRequest, startAzureEmulators, type AzureEmulators } from './azure-emulators.ts';

export const CLIENT_SECRET_ENV = 'PROVKEY_TEST_AZURE_CLIENT_SECRET';

/** Exactly the permissions docs/azure.md asks for (Key Vault access-policy names). */
export const DOCUMENTED_PERMISSIONS = ['secrets/get', 'secrets/list', 'secrets/set', 'secrets/delete', 'secrets/purge'];

export const AZURE_TIER_KINDS = ['emulator', 'double', 'real-azure'] as const;
export type AzureTierKind = (typeof AZURE_TIER_KINDS)[number];

export interface AzureTier {
  kind: AzureTierKind;
  /** The harness can change permissions, inject faults and reach an identity endpoint (not on real Azure). */
  controllable: boolean;
  label: string;
  clientId: string;
  clientSecret: string;
  /** A store section (before schema defaults) using client credentials from env:CLIENT_SECRET_ENV. */
  storeSection(fields?: Record<string, unknown>): Record<string, unknown>;
  /** Environment a provkey subprocess needs for storeSection(). */
  env: Record<string, string>;
  openStore(fields?: Record<string, unknown>, internals?: AzureStoreInternals, env?: NodeJS.ProcessEnv): Promise<SecretStore>;
  /** What the store holds for `key`, read through a fresh store. */
  readState(key: string, fields?: Record<string, unknown>): Promise<KeyRecord | undefined>;
  /** Every version of `key` with its value (null once disabled), for the secret scan. */
  storedVersions(key: string): Promise<Array<{ id: string; label: string; fingerprint: string; value: string | null }>>;
  /** Limits the test principal to `operations` (emulator/Key Vault names); undefined restores full access. */
  restrict(operations: string[] | undefined): Promise<void>;
  throttleNext(n: number): Promise<void>;
  /** Every Key Vault version of `key`'s value secret with its attributes, read over the REST API (as an app reading Key Vault would). */
  /** Stops the vault's clock at the current second, or lets it run again. */
  freezeClock(on: boolean): Promise<void>;
  /** Sets expiresOn (Unix seconds) of one provkey version's value, over the REST API, as someone editing the vault would. */
  setValueExpiry(key: string, provkeyVersion: string, exp: number): Promise<void>;
  valueVersions(key: string): Promise<Array<{ version: string; provkeyVersion: string | undefined; enabled: boolean; created: number; exp: number | undefined }>>;
  failNext(n: number): Promise<void>;
  identity: { endpoint: string; header: string };
  emulators?: AzureEmulators;
  double?: KeyVaultDouble;
  debugLines: string[];
  stop(): Promise<void>;
}

export function emulatorTierSkipReason(): string | undefined {
  const bins = azureEmulatorBinaries();
  return 'skip' in bins ? bins.skip : undefined;
}

/** Why a tier cannot run here, or undefined when it can. */
export function azureTierSkipReason(kind: AzureTierKind): string | undefined {
  if (kind === 'emulator') return emulatorTierSkipReason();
  if (kind === 'double') return undefined;
  const real = realAzureSettings();
  return 'skip' in real ? real.skip : undefined;
}

/** The real vault and service principal from the environment, or why the real-Azure tier cannot run. */
function realAzureSettings(): { vaultUrl: string; tenantId: string; clientId: string; clientSecret: string; authorityHost: string | undefined } | { skip: string } {
  const env = process.env;
  const missing = ['PROVKEY_TEST_AZURE_VAULT_URL', 'AZURE_TENANT_ID', 'AZURE_CLIENT_ID', 'AZURE_CLIENT_SECRET'].filter((name) => !env[name]);
  if (missing.length) return { skip: `real Azure: ${missing.join(', ')} not set (a vault URL and a service principal holding exactly the permissions in docs/azure.md)` };
  let url: URL;
  try {
    url = new URL(env.PROVKEY_TEST_AZURE_VAULT_URL!);
  } catch {
    return { skip: `real Azure: PROVKEY_TEST_AZURE_VAULT_URL is not a URL` };
  }
  if (url.protocol !== 'https:') return { skip: 'real Azure: PROVKEY_TEST_AZURE_VAULT_URL must be https://NAME.vault.azure.net' };
  return { vaultUrl: url.origin, tenantId: env.AZURE_TENANT_ID!, clientId: env.AZURE_CLIENT_ID!, clientSecret: env.AZURE_CLIENT_SECRET!, authorityHost: env.AZURE_AUTHORITY_HOST || undefined };
}

export async function startAzureTier(kind: AzureTierKind, options: { strictClock?: boolean } = {}): Promise<AzureTier> {
  const prefix = `it${randomBytes(3).toString('hex')}-`;
  const debugLines: string[] = [];
  const opened: SecretStore[] = [];
  let base: { vaultUrl: string; authorityHost: string | undefined; tenantId: string; caFile: string | undefined; clientId: string; clientSecret: string; identity: { endpoint: string; header: string } };
  let emulators: AzureEmulators | undefined;
  let double: KeyVaultDouble | undefined;
  let principal = '';

  if (kind === 'emulator') {
    const bins = azureEmulatorBinaries();
    if ('skip' in bins) throw new Error(bins.skip);
    emulators = await startAzureEmulators(bins);
    base = {
      vaultUrl: emulators.vaultUrl,
      authorityHost: emulators.authorityHost,
      tenantId: emulators.tenantId,
      caFile: emulators.caFile,
      clientId: ENTRA_SEED.daemonClientId,
      clientSecret: ENTRA_SEED.daemonClientSecret,
      identity: { endpoint: emulators.identityEndpoint, header: emulators.identityHeader },
    };
    principal = await emulators.principalOf(base.clientId, base.clientSecret);
  } else if (kind === 'real-azure') {
    const real = realAzureSettings();
    if ('skip' in real) throw new Error(real.skip);
    base = { vaultUrl: real.vaultUrl, authorityHost: real.authorityHost, tenantId: real.tenantId, caFile: undefined, clientId: real.clientId, clientSecret: real.clientSecret, identity: { endpoint: '', header: '' } };
  } else {
    double = await startKeyVaultDouble({ strictClock: options.strictClock ?? false });
    const clientId = '3f4b9d8e-0c1a-4c55-9a0e-6b7f2d1e5a90';
    const clientSecret = `dbl-${randomBytes(12).toString('hex')}`;
    double.addClient(clientId, clientSecret);
    principal = clientId;
    base = { vaultUrl: double.vaultUrl, authorityHost: double.authorityHost, tenantId: double.tenantId, caFile: double.caFile, clientId, clientSecret, identity: { endpoint: double.identityEndpoint, header: double.identityHeader } };
  }

  const storeSection = (fields: Record<string, unknown> = {}) => ({
    type: 'azure',
    vaultUrl: base.vaultUrl,
    secretPrefix: prefix,
    auth: { method: 'clientSecret', tenantId: base.tenantId, clientId: base.clientId, clientSecretRef: `env:${CLIENT_SECRET_ENV}` },
    ...(base.authorityHost === undefined ? {} : { authorityHost: base.authorityHost }),
    timeout: '10s',
    retries: 3,
    maxRetryDelay: '2s',
    // Real Azure keeps the default settle (a second of margin for Key Vault's own clocks).
    ...(kind === 'real-azure'
      ? {}
      : {
          settle: '1100ms',
          emulator: { caFile: base.caFile, disableChallengeResourceVerification: true, disableInstanceDiscovery: true, ...(options.strictClock && kind === 'double' ? { strictlyIncreasingCreatedOn: true } : {}) },
        }),
    ...fields,
  });
  const env = { [CLIENT_SECRET_ENV]: base.clientSecret };
  const context = (extraEnv: NodeJS.ProcessEnv = {}): AdapterContext => {
    const all = { ...env, ...extraEnv };
    return {
      configDir: tmpdir(),
      env: all,
      resolveSecret: async (ref, field) => {
        const name = ref.startsWith('env:') ? ref.slice(4) : undefined;
        const value = name === undefined ? undefined : all[name];
        if (value === undefined) throw new Error(`${field}: ${ref} is not set`);
        return value;
      },
      debug: (line) => debugLines.push(line),
    };
  };
  const openStore = async (fields: Record<string, unknown> = {}, internals: AzureStoreInternals = {}, extraEnv: NodeJS.ProcessEnv = {}) => {
    const config = v.parse(storeSchema, storeSection(fields));
    if (config.type !== 'azure') throw new Error('not an azure config');
    const store = await createAzureStore('azure', config as AzureStoreConfig, context(extraEnv), internals);
    opened.push(store);
    return store;
  };

  /** One Key Vault REST call with a client-credentials token of the test principal (no SDK: an app's view). */
  const rest = async (method: string, url: string, body?: unknown) => {
    const ca = base.caFile === undefined ? undefined : readFileSync(base.caFile, 'utf8');
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: base.clientId, client_secret: base.clientSecret, scope: 'https://vault.azure.net/.default' });
    const tokenAnswer = await httpsRequest(`${base.authorityHost ?? 'https://login.microsoftonline.com'}/${base.tenantId}/oauth2/v2.0/token`, 'POST', ca, form.toString(), { 'content-type': 'application/x-www-form-urlencoded' });
    const token = (JSON.parse(tokenAnswer.body) as { access_token?: string }).access_token;
    if (!token) throw new Error(`no token for the REST call (${tokenAnswer.status})`);
    return httpsRequest(url, method, ca, body === undefined ? undefined : JSON.stringify(body), { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) });
  };
  const uncontrollable = (what: string) => new Error(`real Azure: the harness cannot ${what}; this test needs the emulator or the double`);
  return {
    kind,
    controllable: kind !== 'real-azure',
    label:
      kind === 'emulator'
        ? 'azure (azure-keyvault-emulator + entra-emulator, documented permissions only)'
        : kind === 'double'
          ? 'azure (Key Vault protocol double, documented permissions only)'
          : 'azure (real Azure Key Vault, the given principal)',
    clientId: base.clientId,
    clientSecret: base.clientSecret,
    storeSection,
    env,
    openStore,
    async readState(key, fields) {
      const store = await openStore(fields);
      try {
        return await store.read(key);
      } finally {
        await store.close();
      }
    },
    async storedVersions(key) {
      const store = await openStore();
      try {
        const record = await store.read(key);
        const out: Array<{ id: string; label: string; fingerprint: string; value: string | null }> = [];
        for (const v of record?.versions ?? []) out.push({ id: v.id, label: v.label, fingerprint: v.fingerprint, value: await store.readSecret(key, v.id).catch(() => null) });
        return out;
      } finally {
        await store.close();
      }
    },
    async restrict(operations) {
      if (kind === 'real-azure') {
        // The principal given is the documented least-privilege one (docs/azure.md, testing).
        if (operations === undefined || operations.join() === DOCUMENTED_PERMISSIONS.join()) return;
        throw uncontrollable('change the principal\'s permissions');
      }
      const map = operations === undefined ? {} : { [principal]: operations };
      if (emulators) {
        // The emulator gates PATCH (update attributes) as "secrets/update"; Key Vault's access
        // policy grants it with "set" (REST reference: Update Secret requires secrets/set).
        const ops = operations?.includes('secrets/set') ? [...operations, 'secrets/update'] : operations;
        const answer = await emulators.control('permissions', ops === undefined ? {} : { [principal]: ops });
        if (answer.status !== 200) throw new Error(`emulator permissions: ${answer.status} ${answer.body}`);
      } else double!.setPermissions(map);
    },
    async throttleNext(n) {
      if (kind === 'real-azure') throw uncontrollable('inject throttling');
      if (emulators) await emulators.control('faults', { throttleNextRequests: n });
      else double!.throttleNext(n);
    },
    async freezeClock(on) {
      if (kind === 'real-azure') throw uncontrollable("stop Key Vault's clock");
      if (emulators) {
        const answer = await emulators.control('clock', { freeze: on });
        if (answer.status !== 200) throw new Error(`emulator clock: ${answer.status} ${answer.body}`);
      } else double!.freezeClock(on);
    },
    async valueVersions(key) {
      const out: Array<{ version: string; provkeyVersion: string | undefined; enabled: boolean; created: number; exp: number | undefined }> = [];
      let next: string | null = `${base.vaultUrl}/secrets/${secretNames(prefix, key).value}/versions?api-version=7.5`;
      while (next) {
        const answer = await rest('GET', next);
        if (answer.status !== 200) throw new Error(`list versions: ${answer.status} ${answer.body}`);
        const page = JSON.parse(answer.body) as { value: Array<{ id: string; tags?: Record<string, string>; attributes: { enabled: boolean; created: number; exp?: number } }>; nextLink?: string | null };
        for (const v of page.value) out.push({ version: v.id.split('/').at(-1)!, provkeyVersion: v.tags?.['provkey-version'], enabled: v.attributes.enabled, created: v.attributes.created, exp: v.attributes.exp });
        next = page.nextLink ?? null;
      }
      return out.sort((a, b) => Number(a.provkeyVersion) - Number(b.provkeyVersion));
    },
    async setValueExpiry(key, provkeyVersion, exp) {
      const version = (await this.valueVersions(key)).find((v) => v.provkeyVersion === provkeyVersion);
      if (!version) throw new Error(`${key} has no value version tagged provkey-version ${provkeyVersion}`);
      const answer = await rest('PATCH', `${base.vaultUrl}/secrets/${secretNames(prefix, key).value}/${version.version}?api-version=7.5`, { attributes: { exp } });
      if (answer.status !== 200) throw new Error(`update version: ${answer.status} ${answer.body}`);
    },
    async failNext(n) {
      if (kind === 'real-azure') throw uncontrollable('inject failures');
      if (emulators) await emulators.control('faults', { rejectNextRequests: n });
      else double!.failNext(n);
    },
    identity: base.identity,
    ...(emulators ? { emulators } : {}),
    ...(double ? { double } : {}),
    debugLines,
    async stop() {
      for (const store of opened) await store.close().catch(() => undefined);
      await emulators?.stop();
      await double?.stop();
    },
  };
}
