import type { SecretClient } from '@azure/keyvault-secrets';
import type { AdapterContext } from '../context.js';
import { classifyFailure, type BeingDeletedMark, type MissingError, type Operation } from './classify.js';
import { createCredential } from './credential.js';
import { azureError } from './errors.js';
import type { AzureSettings } from './settings.js';
import { transportOptions } from './transport.js';

/**
 * The one place that talks to Key Vault: loads the SDKs on first use (so no other provkey run
 * pays for them), builds the client (transport.ts, credential.ts), and passes every failure
 * through classify.ts, so each error names the Key Vault operation ("secrets/set") and the vault.
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

  /** The value of one version, or why Key Vault will not give it: the secret or version does not exist, is disabled, or is past its expiresOn. */
  async getValue(name: string, version: string): Promise<{ value: string } | { missing: 'absent' | 'disabled' | 'expired' }> {
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

  /** Replaces a version's whole tag map (Key Vault has no partial tag update) and/or sets its expiresOn. */
  async updateProperties(name: string, version: string, properties: { tags?: Record<string, string>; expiresOn?: Date }): Promise<void> {
    const client = await this.sdk();
    await this.call('secrets/set', name, () => client.updateSecretProperties(name, version, { ...properties, ...this.requestOptions() }));
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

    const options = await transportOptions(this.settings);
    const credential = await createCredential(identity, this.settings, this.context, options.identity);
    return new Client(this.settings.vaultUrl, credential, options.vault);
  }

  /** Runs one SDK call and classifies what went wrong. */
  private async call<T>(operation: Operation, name: string, run: () => Promise<T>, options: { disabledIsMissing?: boolean } = {}): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw classifyFailure(this.settings, operation, name, error, options);
    }
  }
}
