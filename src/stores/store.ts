import type { AuditKey } from '../audit/chain.js';
import type { StoreGeneration } from '../audit/generation.js';
import type { KeyRecord, LifecycleState, VersionMeta } from '../core/model.js';

/**
 * Where a key's secret values and lifecycle state live. One small required core; each
 * adapter says what its backend can do natively through `capabilities`.
 *
 * Rules every adapter follows (the contract suite in test/contract/store-contract.ts checks them):
 * - `read` returns metadata only; a value leaves the store only through `readSecret`.
 * - Every write takes the revision the caller last read and throws ConflictError when the
 *   key changed since: two rotators can never both win a claim.
 * - Only a real "does not exist" is `undefined`/not_found; auth failures, timeouts, sealed
 *   servers and throttling are AdapterErrors of their own kind.
 * - Errors and messages never contain a secret value.
 */
export interface SecretStore {
  /** The store's name in the config (e.g. "default", "prod-vault"). */
  readonly name: string;
  readonly type: StoreType;
  readonly capabilities: StoreCapabilities;

  listKeys(): Promise<string[]>;
  read(key: string): Promise<KeyRecord | undefined>;
  /**
   * Stores a new version. `expectedRevision` undefined means the key must not exist yet.
   * When `state` is given it replaces the key's lifecycle state in the same write where the
   * backend allows it, else in an immediately following compare-and-set write.
   */
  addVersion(
    key: string,
    expectedRevision: string | undefined,
    secret: string,
    meta: NewVersionMeta,
    state?: LifecycleState,
  ): Promise<{ record: KeyRecord; versionId: string }>;
  /** Compare-and-set write of the version labels and the lifecycle state. */
  update(key: string, expectedRevision: string, change: RecordChange): Promise<KeyRecord>;
  readSecret(key: string, versionId: string): Promise<string>;
  /**
   * Makes a version's value unusable in the store (Vault: soft delete, or destroy when asked;
   * Azure: enabled=false; file: the value is erased). The label is changed through `update`.
   */
  disableVersion(key: string, versionId: string, options?: { destroy?: boolean }): Promise<void>;
  /** Removes the key and all its versions (used by `migrate` once a copy is verified). */
  deleteKey(key: string): Promise<void>;
  close(): Promise<void>;
  /** Embedded store only: the audit chain key, derived from this store's key (undefined while it has none; `create`: make the key file now). */
  auditKey?(options?: { create: boolean }): Promise<AuditKey | undefined>;
  /** Embedded store only: its generation and whether it exists, for `audit verify`'s cross-check. */
  generationState?(): Promise<StoreGeneration>;
}

export type StoreType = 'file' | 'vault' | 'azure';

export interface StoreCapabilities {
  /** How a claim is made exclusive: native CAS (Vault KV cas, the embedded store's database transaction), re-read and compare (Azure). */
  compareAndSet: 'native' | 'reread' | 'lock';
  /** The backend keeps versions itself (Vault, Azure) rather than provkey emulating them. */
  nativeVersions: boolean;
  /** Disabled versions can be recovered (Vault soft delete, Azure enabled=false). */
  softDelete: boolean;
}

export type NewVersionMeta = Omit<VersionMeta, 'id'>;

export interface RecordChange {
  /** The full list of version metadata after the change (ids must already exist). */
  versions: VersionMeta[];
  state: LifecycleState;
}
