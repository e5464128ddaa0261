import { readFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import type { LookupFunction } from 'node:net';
import type { TokenCredential } from '@azure/identity';
import type { SecretClient, SecretClientOptions } from '@azure/keyvault-secrets';

type PipelinePolicy = NonNullable<SecretClientOptions['additionalPolicies']>[number]['policy'];
import type { AdapterContext } from '../context.js';
import { azureError } from './errors.js';
import type { AzureSettings } from './settings.js';

/**
 * The one place that talks to Key Vault: loads the SDKs on first use (so no other provkey run
 * pays for them), builds the credential, and turns every failure into an AdapterError that
 * names the Key Vault operation ("secrets/set") and the vault.
 */

export interface ListedVersion {
  versionId: string;
  createdOn: Date | undefined;
  enabled: boolean;
  tags: Record<string, string>;
}

/** What a test may replace: how the SDK modules are loaded (import cost is measured there). */
export interface AzureClientInternals {
  onSdkLoaded?: (ms: number) => void;
}

type Operation = 'secrets/get' | 'secrets/list' | 'secrets/set' | 'secrets/delete' | 'secrets/purge' | 'secrets/recover';

export class AzureVaultClient {
  private client: Promise<SecretClient> | undefined;
  private readonly settings: AzureSettings;
  private readonly context: AdapterContext;
  private readonly internals: AzureClientInternals;

  constructor(settings: AzureSettings, context: AdapterContext, internals: AzureClientInternals = {}) {
    this.settings = settings;
    this.context = context;
    this.internals = internals;
  }

  async setSecret(name: string, value: string, options: { tags: Record<string, string>; contentType: string; expiresOn?: Date }): Promise<{ versionId: string; createdOn: Date | undefined }> {
    const client = await this.sdk();
    const set = await this.call('secrets/set', name, () => client.setSecret(name, value, { ...options, ...this.requestOptions() }));
    const versionId = set.properties.version;
    if (!versionId) throw azureError('invalid', `Key Vault answered secrets/set of ${name} on ${this.settings.vault} without a version id`);
    return { versionId: versionId.toLowerCase(), createdOn: set.properties.createdOn };
  }

  /** The value of one version; undefined when the secret or version does not exist or is disabled. */
  async getValue(name: string, version: string): Promise<{ value: string } | { missing: 'absent' | 'disabled' }> {
    const client = await this.sdk();
    try {
      const secret = await this.call('secrets/get', name, () => client.getSecret(name, { version, ...this.requestOptions() }), { disabledIsMissing: true });
      return { value: secret.value ?? '' };
    } catch (error) {
      if ((error as MissingError).missing) return { missing: (error as MissingError).missing };
      throw error;
    }
  }

  /** Every version of a secret with its tags (an unknown secret has none). */
  async listVersions(name: string): Promise<ListedVersion[]> {
    const client = await this.sdk();
    try {
      return await this.call('secrets/list', name, async () => {
        const versions: ListedVersion[] = [];
        for await (const p of client.listPropertiesOfSecretVersions(name, this.requestOptions())) {
          if (!p.version) continue;
          versions.push({ versionId: p.version.toLowerCase(), createdOn: p.createdOn, enabled: p.enabled !== false, tags: p.tags ?? {} });
        }
        return versions;
      });
    } catch (error) {
      if ((error as MissingError).missing === 'absent') return [];
      throw error;
    }
  }

  async listSecretNames(): Promise<string[]> {
    const client = await this.sdk();
    return this.call('secrets/list', '(all secrets)', async () => {
      const names: string[] = [];
      for await (const p of client.listPropertiesOfSecrets(this.requestOptions())) names.push(p.name);
      return names;
    });
  }

  async disable(name: string, version: string): Promise<void> {
    const client = await this.sdk();
    await this.call('secrets/set', name, () => client.updateSecretProperties(name, version, { enabled: false, ...this.requestOptions() }));
  }

  /** Replaces a version's whole tag map (Key Vault has no partial tag update). */
  async setTags(name: string, version: string, tags: Record<string, string>): Promise<void> {
    const client = await this.sdk();
    await this.call('secrets/set', name, () => client.updateSecretProperties(name, version, { tags, ...this.requestOptions() }));
  }

  /** Soft-deletes a secret and waits until Key Vault reports it deleted; an unknown secret is done. */
  async deleteSecret(name: string): Promise<'deleted' | 'absent'> {
    const client = await this.sdk();
    try {
      await this.call('secrets/delete', name, async () => {
        const poller = await client.beginDeleteSecret(name, { ...this.requestOptions(), intervalInMs: 500 });
        await poller.pollUntilDone();
      });
      return 'deleted';
    } catch (error) {
      if ((error as MissingError).missing === 'absent') return 'absent';
      throw error;
    }
  }

  /**
   * Purges a soft-deleted secret. Key Vault deletes asynchronously: until it is done, purge and
   * set answer 409 ObjectIsBeingDeleted, so this retries with a bounded backoff.
   */
  async purge(name: string): Promise<void> {
    const client = await this.sdk();
    await this.whileBeingDeleted(`purging ${name}`, () => this.call('secrets/purge', name, () => client.purgeDeletedSecret(name, this.requestOptions())));
  }

  /** Retries `run` while Key Vault answers 409 ObjectIsBeingDeleted (at most ~30 s). */
  async whileBeingDeleted<T>(what: string, run: () => Promise<T>): Promise<T> {
    let delay = 250;
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        return await run();
      } catch (error) {
        if (!(error as BeingDeletedMark).beingDeleted || Date.now() + delay > deadline) throw error;
        this.context.debug(`[azure] ${what}: Key Vault is still deleting it; retrying in ${delay} ms`);
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 4000);
      }
    }
  }

  close(): void {
    this.client = undefined;
  }

  private requestOptions() {
    return { requestOptions: { timeout: this.settings.timeoutMs } };
  }

  private sdk(): Promise<SecretClient> {
    this.client ??= this.createClient();
    return this.client;
  }

  private async createClient(): Promise<SecretClient> {
    const started = performance.now();
    const [{ SecretClient: Client }, identity] = await Promise.all([import('@azure/keyvault-secrets'), import('@azure/identity')]);
    const loadedMs = performance.now() - started;
    this.internals.onSdkLoaded?.(loadedMs);
    this.context.debug(`[azure] Azure SDK modules loaded in ${loadedMs.toFixed(0)} ms`);

    const s = this.settings;
    const ca = s.emulator?.caFile === undefined ? undefined : await readCaFile(s.emulator.caFile, s.storeName);
    const transport = {
      ...(ca === undefined ? {} : { tlsOptions: { ca } }),
      retryOptions: { maxRetries: s.retries, retryDelayInMs: 500, maxRetryDelayInMs: s.maxRetryDelayMs },
      additionalPolicies: [{ policy: retryAfterCap(s.maxRetryDelayMs), position: 'perRetry' as const }],
    };
    const identityOptions = {
      ...transport,
      ...(s.authorityHost === undefined ? {} : { authorityHost: s.authorityHost }),
      ...(s.emulator?.disableInstanceDiscovery ? { disableInstanceDiscovery: true } : {}),
    };
    const credential = await this.credential(identity, identityOptions);
    // Host override (emulator only): the vault's own name stays in the URL, so TLS checks its
    // certificate and the SDK's challenge-resource check both see *.vault.azure.net.
    const connectTo = s.emulator?.connectTo;
    const pinned =
      connectTo === undefined
        ? {}
        : {
            agent: new Agent({
              keepAlive: true,
              ...(ca === undefined ? {} : { ca }),
              lookup: pinnedLookup(connectTo),
            }),
          };
    return new Client(s.vaultUrl, credential, {
      ...transport,
      ...pinned,
      ...(s.emulator?.disableChallengeResourceVerification ? { disableChallengeResourceVerification: true } : {}),
    });
  }

  private async credential(identity: typeof import('@azure/identity'), options: Record<string, unknown>): Promise<TokenCredential> {
    const auth = this.settings.auth;
    const field = `stores.${this.settings.storeName}.auth`;
    switch (auth.method) {
      case 'default':
        return new identity.DefaultAzureCredential({
          ...options,
          ...(auth.tenantId === undefined ? {} : { tenantId: auth.tenantId }),
          ...(auth.managedIdentityClientId === undefined ? {} : { managedIdentityClientId: auth.managedIdentityClientId }),
        });
      case 'clientSecret': {
        const secret = await this.context.resolveSecret(auth.clientSecretRef, `${field}.clientSecretRef`);
        return new identity.ClientSecretCredential(auth.tenantId, auth.clientId, secret, options);
      }
      case 'clientCertificate': {
        const chain = { ...options, sendCertificateChain: auth.sendCertificateChain };
        if (auth.certificatePath) return new identity.ClientCertificateCredential(auth.tenantId, auth.clientId, { certificatePath: auth.certificatePath }, chain);
        const certificate = await this.context.resolveSecret(auth.certificateRef!, `${field}.certificateRef`);
        return new identity.ClientCertificateCredential(auth.tenantId, auth.clientId, { certificate }, chain);
      }
      case 'managedIdentity':
        return auth.clientId === undefined
          ? new identity.ManagedIdentityCredential(options)
          : new identity.ManagedIdentityCredential({ ...options, clientId: auth.clientId });
    }
  }

  /** Runs one SDK call and classifies what went wrong. */
  private async call<T>(operation: Operation, name: string, run: () => Promise<T>, options: { disabledIsMissing?: boolean } = {}): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw this.classify(operation, name, error, options);
    }
  }

  /**
   * A token could not be had. Unreachable identity endpoints are exit 5 (retry later), a
   * refused credential or none configured exit 6; the STS error and AADSTS code are kept (they
   * never contain the secret), its free-text description is not.
   */
  private credentialFailure(where: string, e: CredentialFailure): Error {
    const failures = e.name === 'AggregateAuthenticationError' && Array.isArray(e.errors) ? e.errors : [e];
    const text = failures.map((f) => `${f.errorResponse?.error ?? ''} ${f.errorResponse?.errorDescription ?? ''} ${f.message ?? ''}`).join(' ');
    const method = this.settings.auth.method;
    const authority = this.settings.authorityHost ?? 'https://login.microsoftonline.com';
    const refused = failures.find((f) => f.name === 'AuthenticationError' || f.name === 'AuthenticationRequiredError');
    if (!refused && /endpoints_resolution_error|ECONNREFUSED|ENOTFOUND|ETIMEDOUT|EAI_AGAIN|network|socket|timed? ?out/i.test(text)) {
      return azureError('unreachable', `no token for ${where}: the identity provider (${authority}) cannot be reached or is not an Entra authority (${/endpoints_resolution_error/.test(text) ? 'endpoints_resolution_error' : 'network error'}); check authorityHost and the network, then retry`);
    }
    if (refused?.statusCode !== undefined && refused.statusCode >= 500) {
      return azureError('unreachable', `no token for ${where}: the identity provider answered ${refused.statusCode}; retry later`);
    }
    if (!refused) return azureError('auth_failed', `no token for ${where} with auth method "${method}": no credential is available in this environment (see docs/azure.md, authentication)`);
    const sts = refused.errorResponse?.error ?? /^([a-z_]+):/.exec(refused.message ?? '')?.[1];
    const aadsts = /AADSTS\d+/.exec(text)?.[0];
    const reason = [sts, aadsts].filter(Boolean).join(', ');
    return azureError(
      'auth_failed',
      `no token for ${where} with auth method "${method}"${reason ? ` (${reason})` : ''}: the identity provider refused the credential (wrong client secret or certificate, unknown client id or tenant?)`,
    );
  }

  private classify(operation: Operation, name: string, error: unknown, options: { disabledIsMissing?: boolean }): Error {
    const e = error as { name?: string; statusCode?: number; code?: string; message?: string; errorResponse?: { error?: string; errorDescription?: string } };
    const where = `${operation} of ${name} on ${this.settings.vault}`;
    const serviceMessage = oneLine(e.message ?? '');

    if (e.name === 'AuthenticationError' || e.name === 'CredentialUnavailableError' || e.name === 'AggregateAuthenticationError' || e.name === 'AuthenticationRequiredError') {
      return this.credentialFailure(where, e);
    }

    const status = e.statusCode;
    if (status === undefined) {
      if (e.name === 'AbortError' || /timed? ?out|ETIMEDOUT|ESOCKETTIMEDOUT/i.test(`${e.code ?? ''} ${e.message ?? ''}`)) {
        return azureError('timeout', `${where}: no answer within ${this.settings.timeoutMs} ms`);
      }
      if (/self[- ]signed|certificate|UNABLE_TO_VERIFY|ERR_TLS|CERT_/i.test(`${e.code ?? ''} ${e.message ?? ''}`)) {
        return azureError('unreachable', `${where}: TLS verification failed (${e.code ?? serviceMessage}); is the vault's certificate trusted?`);
      }
      return azureError('unreachable', `${where}: cannot reach the vault (${e.code ?? serviceMessage})`);
    }
    const code = e.code ?? '';
    if (status === 401) {
      return azureError('auth_failed', `Key Vault refused the token for ${where} (401${code ? ` ${code}` : ''}): expired, for another audience than https://vault.azure.net, or from an issuer the vault does not trust`);
    }
    if (status === 403) {
      if (/disabled/i.test(serviceMessage) && options.disabledIsMissing) return Object.assign(new Error('disabled'), { missing: 'disabled' as const });
      return azureError('permission_denied', `the principal may not ${operation} on ${this.settings.vault} (403${code ? ` ${code}` : ''}); grant ${operation} (see docs/azure.md, permissions), then retry`);
    }
    if (status === 404) return Object.assign(azureError('not_found', `${where}: not found`), { missing: 'absent' as const });
    if (status === 409) {
      if (/ObjectIsBeingDeleted|being deleted/i.test(`${code} ${serviceMessage}`)) {
        return Object.assign(azureError('server_error', `${where}: Key Vault is still deleting the secret (409 ObjectIsBeingDeleted); retry later`), { beingDeleted: true });
      }
      if (/deleted|recover/i.test(serviceMessage)) {
        return azureError(
          'locked',
          `${where}: the secret ${name} is deleted but recoverable (soft delete). Recover it (az keyvault secret recover --vault-name … --name ${name}) or purge it (az keyvault secret purge …), then retry`,
        );
      }
      return azureError('locked', `${where}: conflict (409${code ? ` ${code}` : ''})`);
    }
    if (status === 429) return azureError('throttled', `${where}: Key Vault is throttling requests (429) after ${this.settings.retries} retries; retry later`);
    if (status >= 500) return azureError('server_error', `${where}: Key Vault failed (${status}${code ? ` ${code}` : ''}) after ${this.settings.retries} retries; retry later`);
    if (status === 400) return azureError('invalid', `${where}: Key Vault refused the request (400${code ? ` ${code}` : ''}): ${serviceMessage.slice(0, 200)}`);
    return azureError('server_error', `${where}: unexpected answer ${status}${code ? ` ${code}` : ''}`);
  }
}

interface CredentialFailure {
  name?: string;
  statusCode?: number;
  message?: string;
  errorResponse?: { error?: string; errorDescription?: string };
  errors?: CredentialFailure[];
}

interface MissingError extends Error {
  missing: 'absent' | 'disabled';
}
interface BeingDeletedMark {
  beingDeleted?: boolean;
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

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}

