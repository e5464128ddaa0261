import type { AzureStoreConfig } from '../config/schema.js';
import type { KeyRecord, LifecycleState } from '../core/model.js';
import { chainNodeOf, resolveChain, revisionOf, ROOT, TAG, type ChainNode } from './azure/chain.js';
import { AzureVaultClient, type AzureClientInternals, type ListedVersion } from './azure/client.js';
import { parseStateDocument, STATE_CONTENT_TYPE, toKeyRecord, VALUE_CONTENT_TYPE, type StateDocument, type StoredVersion } from './azure/document.js';
import { azureConflict, azureError } from './azure/errors.js';
import { valueExpiresOn } from './azure/expiry.js';
import { checkTags, checkValueSize, keyOfStateSecret, secretNames, type SecretNames } from './azure/names.js';
import { resolveAzureSettings, type AzureSettings } from './azure/settings.js';
import type { AdapterContext } from './context.js';
import { applyRecordChange } from './record-change.js';
import type { NewVersionMeta, RecordChange, SecretStore, StoreCapabilities } from './store.js';

/**
 * Azure Key Vault secrets. A provkey key is two Key Vault secrets (names: azure/names.ts):
 *
 *   <prefix><key>        the value: one Key Vault version per provkey version, tagged with
 *                        its provkey version id and fingerprint; revoke sets enabled=false.
 *   <prefix><key>-state  the record (every version's metadata + lifecycle state), written as
 *                        an append-only chain of versions: azure/chain.ts explains why that
 *                        makes a claim exclusive although Key Vault has no compare-and-set.
 *
 * provkey version ids are provkey's own sequence ("1", "2", …); the state maps each to the
 * Key Vault version id of its value. Each value version's expiresOn follows the key's rotation
 * policy (azure/expiry.ts). Set-up, permissions and limits: docs/azure.md.
 */

export const azureStoreType = 'azure';

export type AzureStoreInternals = AzureClientInternals;

/** Checks the config now (no I/O); loads the SDKs and authenticates on the first call. */
export async function createAzureStore(name: string, config: AzureStoreConfig, context: AdapterContext, internals: AzureStoreInternals = {}): Promise<SecretStore> {
  const settings = resolveAzureSettings(name, config, context);
  return new AzureStore(name, settings, new AzureVaultClient(settings, context, internals), context);
}

interface LoadedKey {
  names: SecretNames;
  head?: ChainNode;
  document?: StateDocument;
}

class AzureStore implements SecretStore {
  readonly type = azureStoreType;
  readonly capabilities: StoreCapabilities = { compareAndSet: 'reread', nativeVersions: true, softDelete: true };

  readonly name: string;
  private readonly settings: AzureSettings;
  private readonly client: AzureVaultClient;
  private readonly context: AdapterContext;

  constructor(name: string, settings: AzureSettings, client: AzureVaultClient, context: AdapterContext) {
    this.name = name;
    this.settings = settings;
    this.client = client;
    this.context = context;
  }

  async listKeys(): Promise<string[]> {
    const keys = new Set<string>();
    for (const secret of await this.client.listSecretNames()) {
      const key = keyOfStateSecret(this.settings.prefix, secret);
      if (key !== undefined) keys.add(key);
    }
    return [...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  async read(key: string): Promise<KeyRecord | undefined> {
    const loaded = await this.load(key);
    return loaded.document && toKeyRecord(loaded.document, loaded.head!);
  }

  async addVersion(
    key: string,
    expectedRevision: string | undefined,
    secret: string,
    meta: NewVersionMeta,
    state?: LifecycleState,
  ): Promise<{ record: KeyRecord; versionId: string }> {
    if (typeof secret !== 'string' || secret.length === 0) throw azureError('invalid', `refusing to store an empty value for ${key}`);
    checkValueSize(key, secret, 'the value');
    const loaded = await this.load(key);
    checkRevision(loaded, key, expectedRevision);

    const versionId = String(loaded.document?.nextId ?? 1);
    const tags = valueTags(key, versionId, meta.fingerprint, meta.label);
    checkTags(key, tags);
    // Renewing from now: a migrated version older than its lifetime is not stored already expired.
    const expiresOn = this.expiresOnOf(key, meta, Date.now());
    const written = await this.client.whileBeingDeleted(`storing ${loaded.names.value}`, () =>
      this.client.setSecret(loaded.names.value, secret, { tags, contentType: VALUE_CONTENT_TYPE, ...(expiresOn ? { expiresOn } : {}) }),
    );
    const version: StoredVersion = {
      id: versionId,
      label: meta.label,
      fingerprint: meta.fingerprint,
      createdAt: meta.createdAt,
      labelledAt: meta.labelledAt,
      ...(meta.graceUntil === undefined ? {} : { graceUntil: meta.graceUntil }),
      origin: meta.origin,
      ...(meta.account === undefined ? {} : { account: meta.account }),
      azureVersion: written.versionId,
    };
    const document: StateDocument = loaded.document
      ? { ...loaded.document, nextId: loaded.document.nextId + 1, versions: [...loaded.document.versions, version], state: state ? structuredClone(state) : loaded.document.state }
      : { provkey: 1, key, nextId: 2, versions: [version], state: state ? structuredClone(state) : {} };

    try {
      const record = await this.appendState(key, loaded, document, expectedRevision);
      return { record, versionId };
    } catch (error) {
      // The value version is not part of the key: disable it so it cannot be read as "latest".
      await this.client
        .disable(loaded.names.value, written.versionId)
        .catch((e: unknown) => this.context.debug(`[azure] could not disable the unused version ${written.versionId} of ${loaded.names.value}: ${(e as Error).message}`));
      throw error;
    }
  }

  async update(key: string, expectedRevision: string, change: RecordChange): Promise<KeyRecord> {
    const loaded = await this.load(key);
    checkRevision(loaded, key, expectedRevision);
    const current = loaded.document!;
    const document: StateDocument = {
      ...current,
      versions: applyRecordChange(key, current.versions, change.versions, (message) => azureError('invalid', message)),
      state: structuredClone(change.state),
    };
    const record = await this.appendState(key, loaded, document, expectedRevision);
    await this.mirrorLabels(key, loaded.names, current.versions, document.versions);
    return record;
  }

  async readSecret(key: string, versionId: string): Promise<string> {
    const loaded = await this.load(key);
    const version = loaded.document?.versions.find((v) => v.id === versionId);
    if (!version) throw azureError('not_found', `${key} has no version ${versionId}`);
    let answer = await this.client.getValue(loaded.names.value, version.azureVersion);
    if ('missing' in answer && answer.missing === 'expired') {
      // A live version past its expiresOn (an overdue rotation): provkey still needs it to finish.
      const renewed = this.expiresOnOf(key, version, Date.now());
      if (renewed && renewed.getTime() > Date.now()) {
        this.context.debug(`[azure] version ${versionId} of ${key} had expired in Key Vault (its rotation is overdue); expiresOn renewed to ${renewed.toISOString()} to read it`);
        await this.client.updateProperties(loaded.names.value, version.azureVersion, { expiresOn: renewed });
        answer = await this.client.getValue(loaded.names.value, version.azureVersion);
      }
    }
    if ('missing' in answer) {
      throw azureError(
        'not_found',
        answer.missing === 'expired'
          ? `version ${versionId} of ${key} is past its expiresOn in Key Vault (${loaded.names.value}/${version.azureVersion}); Key Vault will not return it`
          : answer.missing === 'disabled'
          ? `version ${versionId} of ${key} is disabled (Key Vault version ${version.azureVersion} of ${loaded.names.value} has enabled=false)`
          : `the value of version ${versionId} of ${key} is gone from Key Vault (${loaded.names.value}/${version.azureVersion})`,
      );
    }
    if (answer.value === '') throw azureError('tampered', `${loaded.names.value}/${version.azureVersion} holds an empty value`);
    return answer.value;
  }

  /**
   * Sets enabled=false on the version's Key Vault version: its value can no longer be read (403)
   * but can be enabled again. Key Vault cannot purge a single version, so `destroy` does the
   * same (migrate's placeholders) and says so in --verbose.
   */
  async disableVersion(key: string, versionId: string, options?: { destroy?: boolean }): Promise<void> {
    const loaded = await this.load(key);
    const version = loaded.document?.versions.find((v) => v.id === versionId);
    if (!version) throw azureError('not_found', `${key} has no version ${versionId}`);
    if (options?.destroy) this.context.debug(`[azure] Key Vault cannot purge one version of a secret; version ${versionId} of ${key} is disabled instead`);
    await this.client.disable(loaded.names.value, version.azureVersion);
  }

  /** Deletes both secrets (state first: from then on the key does not exist) and, by default, purges them. */
  async deleteKey(key: string): Promise<void> {
    const names = secretNames(this.settings.prefix, key);
    for (const name of [names.state, names.value]) {
      await this.client.deleteSecret(name);
      if (!this.settings.purgeOnDelete) continue;
      try {
        await this.client.purge(name);
      } catch (error) {
        if ((error as { missing?: string }).missing === 'absent') continue;
        throw error;
      }
    }
  }

  async close(): Promise<void> {
    this.client.close();
  }

  /** expiresOn of a value version (azure/expiry.ts); `renewingAt` when a live version must be readable again. */
  private expiresOnOf(key: string, version: Parameters<typeof valueExpiresOn>[0], renewingAt?: number): Date | undefined {
    return valueExpiresOn(version, this.context.rotationOf?.(key), this.settings.valueExpiryMs, renewingAt);
  }

  /**
   * Copies changed labels into the value versions' tags, for apps and people reading Key Vault
   * directly, and moves expiresOn with the label (a `previous` version expires when its grace
   * ends). Informational only: the state secret is the truth, so a failure never fails the
   * operation whose outcome is already stored. Only the claim holder changes labels, so the
   * whole-map tag writes cannot race.
   */
  private async mirrorLabels(key: string, names: SecretNames, before: readonly StoredVersion[], after: readonly StoredVersion[]): Promise<void> {
    for (const version of after) {
      if (before.find((v) => v.id === version.id)?.label === version.label) continue;
      const expiresOn = this.expiresOnOf(key, version);
      await this.client
        .updateProperties(names.value, version.azureVersion, { tags: valueTags(key, version.id, version.fingerprint, version.label), ...(expiresOn ? { expiresOn } : {}) })
        .catch((e: unknown) => this.context.debug(`[azure] could not copy the label of version ${version.id} into the tags of ${names.value}: ${(e as Error).message}`));
    }
  }

  /**
   * The chain nodes of a listing. Without a settle (emulator.strictlyIncreasingCreatedOn) the
   * fork rule is sound only while no two versions share a createdOn second: checked here, on
   * every listing, so a server that breaks the promise stops the run instead of splitting a claim.
   */
  private chainNodes(stateSecret: string, listed: readonly ListedVersion[]): ChainNode[] {
    const nodes = listed.flatMap((v) => chainNodeOf(v.versionId, v.createdOn, v.tags) ?? []);
    if (this.settings.settleMs === 0 && new Set(nodes.map((n) => n.createdOn)).size !== nodes.length) {
      throw azureError(
        'invalid',
        `stores.${this.name}.emulator.strictlyIncreasingCreatedOn is set, but ${this.settings.vault} gave two versions of ${stateSecret} the same createdOn second: it does not keep that promise (real Key Vault never does); remove the setting`,
      );
    }
    return nodes;
  }

  /** The key's chain head and the document it holds, or only the names for a key that does not exist. */
  private async load(key: string): Promise<LoadedKey> {
    const names = secretNames(this.settings.prefix, key);
    const listed = await this.client.listVersions(names.state);
    const nodes = this.chainNodes(names.state, listed);
    if (listed.length > 0 && nodes.length === 0) {
      throw azureError('tampered', `${names.state} on ${this.settings.vault} has versions but none written by provkey (no ${TAG.seq}/${TAG.parent} tags)`);
    }
    const head = resolveChain(nodes).at(-1);
    if (!head) return { names };
    const answer = await this.client.getValue(names.state, head.versionId);
    if ('missing' in answer) {
      throw azureError('tampered', `the state of ${key} (${names.state}/${head.versionId}) is ${answer.missing === 'disabled' ? 'disabled' : 'gone'}; it was changed outside provkey: enable that version again`);
    }
    return { names, head, document: parseStateDocument(answer.value, key, `${names.state}/${head.versionId}`) };
  }

  /**
   * Appends `document` as a child of the head that was read, waits `settle`, re-lists and
   * keeps the write only if it is on the resolved chain (azure/chain.ts): else another writer
   * won the fork and this write is a dead branch.
   */
  private async appendState(key: string, loaded: LoadedKey, document: StateDocument, expectedRevision: string | undefined): Promise<KeyRecord> {
    const text = JSON.stringify(document);
    checkValueSize(key, text, 'the state document (every version’s metadata; prune old versions)');
    const seq = (loaded.head?.seq ?? 0) + 1;
    const tags = { [TAG.managedBy]: 'provkey', [TAG.key]: key, [TAG.seq]: String(seq), [TAG.parent]: loaded.head?.versionId ?? ROOT };
    const written = await this.client.whileBeingDeleted(`storing ${loaded.names.state}`, () =>
      this.client.setSecret(loaded.names.state, text, { tags, contentType: STATE_CONTENT_TYPE }),
    );
    if (this.settings.settleMs > 0) await new Promise((resolve) => setTimeout(resolve, this.settings.settleMs));
    const listed = await this.client.listVersions(loaded.names.state);
    const chain = resolveChain(this.chainNodes(loaded.names.state, listed));
    const mine = chain.find((n) => n.versionId === written.versionId);
    if (mine) return toKeyRecord(document, mine);
    if (!listed.some((v) => v.versionId === written.versionId)) {
      throw azureError('server_error', `${loaded.names.state}: the version just written (${written.versionId}) is missing from the version list; retry later`);
    }
    throw azureConflict(
      expectedRevision === undefined
        ? `${key} was created by another writer at the same time`
        : `${key} changed since revision ${expectedRevision} was read (another writer's state version won; now ${revisionOf(chain.at(-1)!)})`,
    );
  }
}

function valueTags(key: string, versionId: string, fingerprint: string, label: string): Record<string, string> {
  return { [TAG.managedBy]: 'provkey', [TAG.key]: key, [TAG.version]: versionId, [TAG.fingerprint]: fingerprint, [TAG.label]: label };
}

function checkRevision(loaded: LoadedKey, key: string, expectedRevision: string | undefined): void {
  if (expectedRevision === undefined) {
    if (loaded.head) throw azureConflict(`${key} already exists (revision ${revisionOf(loaded.head)}); add a version with its current revision`);
    return;
  }
  if (!loaded.head) throw azureConflict(`${key} was deleted after revision ${expectedRevision} was read`);
  if (revisionOf(loaded.head) !== expectedRevision) throw azureConflict(`${key} changed since revision ${expectedRevision} was read (now ${revisionOf(loaded.head)})`);
}
