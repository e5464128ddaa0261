import { randomBytes } from 'node:crypto';
import pLimit from 'p-limit';
import type { VaultStoreConfig } from '../config/schema.js';
import type { KeyRecord, LifecycleState, VersionMeta } from '../core/model.js';
import type { AdapterContext } from './context.js';
import { applyRecordChange } from './record-change.js';
import type { NewVersionMeta, RecordChange, SecretStore, StoreCapabilities } from './store.js';
import { VaultClient, type VaultClientInternals } from './vault/client.js';
import { vaultConflict, vaultError, vaultMessage } from './vault/errors.js';
import {
  keyPaths,
  labelMirror,
  listPath,
  parseStateDocument,
  revisionOf,
  toKeyRecord,
  type KeyPaths,
  type StateDocument,
  type StoredState,
} from './vault/layout.js';
import { resolveVaultSettings, type VaultSettings } from './vault/settings.js';

/**
 * HashiCorp Vault / OpenBao KV version 2. See vault/layout.ts for where a key lives and why
 * that makes `update` a true compare-and-set; vault/client.ts for auth, renewal, retries and
 * error kinds; docs/vault.md for set-up and docs/vault-policy.hcl for the policy.
 */

export const vaultStoreType = 'vault';

/**
 * Keeps up to this many versions of a key's value secret (KV v2 prunes older ones, default
 * 10): a run of failed rotations must never push the current version out of the window.
 */
const VALUE_MAX_VERSIONS = 1000;

/**
 * At most this many state reads in flight per store: `status` and `test` over a fleet ask for
 * every key at once, and a Vault server should see a bounded queue, not a burst of thousands.
 */
const READ_CONCURRENCY = 8;

export type VaultStoreInternals = VaultClientInternals;

/** Checks the config now (no I/O); connects and authenticates on the first call. */
export async function createVaultStore(
  name: string,
  config: VaultStoreConfig,
  context: AdapterContext,
  internals: VaultStoreInternals = {},
): Promise<SecretStore> {
  const settings = resolveVaultSettings(name, config, context);
  return new VaultStore(name, settings, new VaultClient(settings, context, internals), context);
}

class VaultStore implements SecretStore {
  readonly name: string;
  readonly type = vaultStoreType;
  readonly capabilities: StoreCapabilities = { compareAndSet: 'native', nativeVersions: true, softDelete: true };
  private readonly settings: VaultSettings;
  private readonly client: VaultClient;
  private readonly context: AdapterContext;
  /**
   * The state each key had when this run last read or wrote it. A write whose expected revision
   * is that state's skips the read before it: the check-and-set on its KV version is what
   * detects a change by anyone else, and a refused write forgets the entry.
   */
  private readonly lastSeen = new Map<string, StoredState>();
  /** State reads in flight, one per key: concurrent readers of one key share it. */
  private readonly reading = new Map<string, Promise<StoredState | undefined>>();
  private readonly readSlot = pLimit(READ_CONCURRENCY);

  constructor(name: string, settings: VaultSettings, client: VaultClient, context: AdapterContext) {
    this.name = name;
    this.settings = settings;
    this.client = client;
    this.context = context;
  }

  async listKeys(): Promise<string[]> {
    const answer = await this.client.call({ method: 'LIST', path: listPath(this.settings), capability: 'list', accept: [404] });
    if (answer.status === 404) return [];
    const keys: unknown = answer.body?.data?.keys;
    if (!Array.isArray(keys)) return [];
    // Each key is a folder holding "state" and "value"; anything else under the prefix is not ours.
    return keys
      .filter((k): k is string => typeof k === 'string' && k.endsWith('/'))
      .map((k) => k.slice(0, -1))
      .filter((k) => /^[A-Za-z0-9._-]+$/.test(k))
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  async read(key: string): Promise<KeyRecord | undefined> {
    const stored = await this.readState(keyPaths(this.settings, key), key);
    return stored && toKeyRecord(key, stored);
  }

  async addVersion(
    key: string,
    expectedRevision: string | undefined,
    secret: string,
    meta: NewVersionMeta,
    state?: LifecycleState,
  ): Promise<{ record: KeyRecord; versionId: string }> {
    if (typeof secret !== 'string' || secret.length === 0) throw vaultError('invalid', `refusing to store an empty value for ${key}`);
    const paths = keyPaths(this.settings, key);
    const stored = await this.stateFor(paths, key, expectedRevision);
    checkRevision(stored, key, expectedRevision);

    // The value first: its KV version number is the new version's id. The state write below
    // is what makes it part of the key; a writer that loses that race removes its value again.
    const written = await this.client.call({
      method: 'POST',
      path: paths.valueData,
      body: { data: { value: secret, fingerprint: meta.fingerprint } },
      capability: 'create/update',
    });
    const versionId = String(kvVersionOf(written.body, paths.valueData, this.settings));
    const version: VersionMeta = {
      id: versionId,
      label: meta.label,
      fingerprint: meta.fingerprint,
      createdAt: meta.createdAt,
      labelledAt: meta.labelledAt,
      ...(meta.graceUntil === undefined ? {} : { graceUntil: meta.graceUntil }),
      origin: meta.origin,
      ...(meta.expiresAt === undefined ? {} : { expiresAt: meta.expiresAt }),
      ...(meta.account === undefined ? {} : { account: meta.account }),
    };
    const document: StateDocument = stored
      ? { ...stored.document, versions: [...stored.document.versions, version], state: state ? structuredClone(state) : stored.document.state }
      : { provkey: 1, key, incarnation: randomBytes(6).toString('hex'), versions: [version], state: state ? structuredClone(state) : {} };

    let saved: StoredState;
    try {
      saved = await this.writeState(paths, key, document, stored, expectedRevision);
    } catch (error) {
      await this.discardValueVersion(paths, versionId);
      throw error;
    }
    await this.mirrorLabels(paths, key, stored?.document.versions, document.versions, !stored);
    return { record: toKeyRecord(key, saved), versionId };
  }

  async update(key: string, expectedRevision: string, change: RecordChange): Promise<KeyRecord> {
    const paths = keyPaths(this.settings, key);
    const stored = await this.stateFor(paths, key, expectedRevision);
    checkRevision(stored, key, expectedRevision);
    const current = stored!;
    const document: StateDocument = {
      ...current.document,
      versions: applyRecordChange(key, current.document.versions, change.versions, (message) => vaultError('invalid', message)),
      state: structuredClone(change.state),
    };
    const saved = await this.writeState(paths, key, document, current, expectedRevision);
    await this.mirrorLabels(paths, key, current.document.versions, document.versions, false);
    return toKeyRecord(key, saved);
  }

  async readSecret(key: string, versionId: string): Promise<string> {
    const paths = keyPaths(this.settings, key);
    if (!/^[1-9][0-9]{0,15}$/.test(versionId)) throw vaultError('not_found', `${key} has no version ${versionId}`);
    const answer = await this.client.call({ method: 'GET', path: paths.valueData, query: { version: versionId }, capability: 'read', accept: [404] });
    if (answer.status === 404) {
      // KV v2 answers a deleted or destroyed version with 404 and its metadata; a missing one with 404 and no data.
      const metadata = answer.body?.data?.metadata;
      if (metadata?.destroyed === true) throw vaultError('not_found', `version ${versionId} of ${key} is disabled (destroyed)`);
      if (typeof metadata?.deletion_time === 'string' && metadata.deletion_time !== '') {
        throw vaultError('not_found', `version ${versionId} of ${key} is disabled (deleted at ${metadata.deletion_time})`);
      }
      throw vaultError('not_found', `${key} has no version ${versionId} in ${paths.where}`);
    }
    const value: unknown = answer.body?.data?.data?.value;
    if (typeof value !== 'string' || value === '') {
      throw vaultError('tampered', `${paths.valueData} version ${versionId} holds no "value" field; it was written by something else`);
    }
    return value;
  }

  /**
   * Soft delete (recoverable with `kv undelete`) unless destroy is asked for or the store is
   * configured with destroyOnRevoke. The state is not touched: the revision stays the same.
   */
  async disableVersion(key: string, versionId: string, options?: { destroy?: boolean }): Promise<void> {
    const paths = keyPaths(this.settings, key);
    if (!/^[1-9][0-9]{0,15}$/.test(versionId)) throw vaultError('not_found', `${key} has no version ${versionId}`);
    const destroy = options?.destroy ?? this.settings.destroyOnRevoke;
    await this.client.call({
      method: 'POST',
      path: destroy ? paths.valueDestroy : paths.valueDelete,
      body: { versions: [Number(versionId)] },
      capability: 'update',
    });
  }

  /** Removes both secrets with all their versions and metadata. Unknown keys are not an error (KV answers 204). */
  async deleteKey(key: string): Promise<void> {
    const paths = keyPaths(this.settings, key);
    this.lastSeen.delete(key);
    // State first: from then on the key does not exist for any reader, even if the second call fails.
    await this.client.call({ method: 'DELETE', path: paths.stateMetadata, capability: 'delete', accept: [404] });
    await this.client.call({ method: 'DELETE', path: paths.valueMetadata, capability: 'delete', accept: [404] });
  }

  async close(): Promise<void> {
    this.client.close();
  }

  /**
   * The state a write is checked against: the one this run last saw when its revision is the
   * expected one (no read; the check-and-set still refuses it if anyone wrote since), else a read.
   */
  private async stateFor(paths: KeyPaths, key: string, expectedRevision: string | undefined): Promise<StoredState | undefined> {
    const seen = this.lastSeen.get(key);
    if (seen && expectedRevision !== undefined && revisionOf(seen) === expectedRevision) return seen;
    return this.readState(paths, key);
  }

  /** One read per key at a time (shared by concurrent callers), at most READ_CONCURRENCY keys at once. */
  private readState(paths: KeyPaths, key: string): Promise<StoredState | undefined> {
    let pending = this.reading.get(key);
    if (!pending) {
      pending = this.readSlot(() => this.fetchState(paths, key)).finally(() => this.reading.delete(key));
      this.reading.set(key, pending);
    }
    return pending;
  }

  private async fetchState(paths: KeyPaths, key: string): Promise<StoredState | undefined> {
    const stored = await this.fetchStateOnce(paths, key);
    if (stored) this.lastSeen.set(key, stored);
    else this.lastSeen.delete(key);
    return stored;
  }

  private async fetchStateOnce(paths: KeyPaths, key: string): Promise<StoredState | undefined> {
    const answer = await this.client.call({ method: 'GET', path: paths.stateData, capability: 'read', accept: [404] });
    if (answer.status === 404) {
      const metadata = answer.body?.data?.metadata;
      if (metadata && (metadata.destroyed === true || (typeof metadata.deletion_time === 'string' && metadata.deletion_time !== ''))) {
        // Someone deleted the latest state version by hand: treating the key as absent would invite a second "add".
        throw vaultError(
          'tampered',
          `the state of ${key} (${paths.stateData}, KV version ${metadata.version}) was deleted outside provkey; undelete it (kv undelete -versions=${metadata.version}) or delete the key's metadata to start over`,
        );
      }
      return undefined;
    }
    const kvVersion = Number(answer.body?.data?.metadata?.version);
    if (!Number.isSafeInteger(kvVersion) || kvVersion < 1) throw notKv2(paths.stateData, this.settings);
    return { kvVersion, document: parseStateDocument(answer.body?.data?.data, key, paths, kvVersion) };
  }

  /** The compare-and-set write: cas = the KV version read (0 for a new key). */
  private async writeState(
    paths: KeyPaths,
    key: string,
    document: StateDocument,
    previous: StoredState | undefined,
    expectedRevision: string | undefined,
  ): Promise<StoredState> {
    const cas = previous?.kvVersion ?? 0;
    const answer = await this.client.call({
      method: 'POST',
      path: paths.stateData,
      body: { options: { cas }, data: document },
      capability: 'create/update',
      accept: [400],
    });
    if (answer.status === 400) {
      const message = vaultMessage(answer.body);
      this.lastSeen.delete(key);
      if (/check-and-set/i.test(message)) {
        throw vaultConflict(
          expectedRevision === undefined
            ? `${key} was created by another writer at the same time`
            : `${key} changed since revision ${expectedRevision} was read (another run wrote it first)`,
        );
      }
      throw vaultError('invalid', `writing ${paths.stateData} was refused: ${message}`);
    }
    const kvVersion = kvVersionOf(answer.body, paths.stateData, this.settings);
    if (kvVersion !== cas + 1) {
      this.lastSeen.delete(key);
      throw notKv2(paths.stateData, this.settings);
    }
    const saved = { kvVersion, document: structuredClone(document) };
    this.lastSeen.set(key, saved);
    return saved;
  }

  /** A value written by an addVersion that then lost its compare-and-set: destroyed, best effort. */
  private async discardValueVersion(paths: KeyPaths, versionId: string): Promise<void> {
    try {
      await this.client.call({ method: 'POST', path: paths.valueDestroy, body: { versions: [Number(versionId)] }, capability: 'update' });
    } catch {
      await this.client
        .call({ method: 'POST', path: paths.valueDelete, body: { versions: [Number(versionId)] }, capability: 'update' })
        .catch((error: unknown) => this.context.debug(`[vault] could not remove the unused version ${versionId} of ${paths.where}: ${(error as Error).message}`));
    }
  }

  /**
   * Copies the live labels into the value secret's custom_metadata (and keeps max_versions
   * raised) when they changed. Informational only, for apps reading Vault directly: failure
   * never fails the operation, whose outcome is already in the state secret.
   */
  private async mirrorLabels(paths: KeyPaths, key: string, before: VersionMeta[] | undefined, after: VersionMeta[], created: boolean): Promise<void> {
    const next = labelMirror(key, after);
    if (!created && before && JSON.stringify(labelMirror(key, before)) === JSON.stringify(next)) return;
    try {
      await this.client.call({
        method: 'POST',
        path: paths.valueMetadata,
        body: { max_versions: VALUE_MAX_VERSIONS, custom_metadata: next },
        capability: 'create/update',
      });
    } catch (error) {
      this.context.debug(`[vault] could not update the label copy in ${paths.valueMetadata}: ${(error as Error).message}`);
    }
  }
}

function checkRevision(stored: StoredState | undefined, key: string, expectedRevision: string | undefined): void {
  if (expectedRevision === undefined) {
    if (stored) throw vaultConflict(`${key} already exists (revision ${revisionOf(stored)}); add a version with its current revision`);
    return;
  }
  if (!stored) throw vaultConflict(`${key} was deleted after revision ${expectedRevision} was read`);
  if (revisionOf(stored) !== expectedRevision) {
    throw vaultConflict(`${key} changed since revision ${expectedRevision} was read (now ${revisionOf(stored)})`);
  }
}

function kvVersionOf(body: unknown, path: string, settings: VaultSettings): number {
  const version = Number((body as { data?: { version?: unknown } } | undefined)?.data?.version);
  if (!Number.isSafeInteger(version) || version < 1) throw notKv2(path, settings);
  return version;
}

function notKv2(path: string, settings: VaultSettings) {
  return vaultError(
    'invalid',
    `${path}: the answer has no KV version; is "${settings.mount}" a KV version 2 mount? (enable one with: bao secrets enable -path=${settings.mount} kv-v2)`,
  );
}
