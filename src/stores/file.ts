import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { deriveAuditKey, type AuditKey } from '../audit/chain.js';
import { generationProblem, type StoreGeneration, type StoreJournal } from '../audit/generation.js';
import type { FileStoreConfig } from '../config/schema.js';
import { ConflictError, NeedsHumanError } from '../core/errors.js';
import { readStateFile } from '../io/safe-file.js';
import { removeStaleTemps } from '../io/stale-temp.js';
import type { KeyRecord, LifecycleState } from '../core/model.js';
import type { AdapterContext } from './context.js';
import { writeFileAtomic } from './file/atomic-write.js';
import { compareNames, emptyDocument, parseDocument, serializeDocument, toKeyRecord, type StoreDocument, type StoredKey } from './file/document.js';
import { openEnvelope, parseEnvelope, sealEnvelope, type Envelope, type Kdf } from './file/envelope.js';
import { fileStoreError, fsFailure } from './file/errors.js';
import { createKeyFile, derivePassphraseKey, describeKeySource, loadKeyFile, newScryptKdf, type KeySource } from './file/keys.js';
import { defaultLockOptions, withFileLock, type LockOptions } from './file/lock.js';
import { applyRecordChange } from './record-change.js';
import type { NewVersionMeta, RecordChange, SecretStore, StoreCapabilities } from './store.js';

/**
 * The embedded store, provkey's default: one AES-256-GCM encrypted file holding every key's
 * versions (meta and value), lifecycle state and revision. Reads need no lock (writes replace
 * the file atomically); every read-modify-write runs under an exclusive lock file, which is
 * how the file store offers compare-and-set. See file/envelope.ts for the on-disk format.
 */

export const fileStoreType = 'file';

/** Test and tuning knobs, not part of provkey.yaml. */
export interface FileStoreInternals {
  /** Wait for another writer's lock this long (default 10 s, or PROVKEY_LOCK_TIMEOUT_MS). */
  lockTimeoutMs?: number;
  /** Take over a lock older than this even if its holder seems alive (default 2 min). */
  staleLockAfterMs?: number;
  /** Tests: runs between a lock-free read of the store and its generation check (a barrier for the reader/writer race). */
  afterLockFreeRead?: () => Promise<void>;
}

interface Layout {
  storeFile: string;
  lockFile: string;
  key: KeySource;
}

/** Opens the store lazily: nothing is read until the first call. */
export async function createFileStore(
  name: string,
  config: FileStoreConfig,
  context: AdapterContext,
  internals: FileStoreInternals = {},
): Promise<SecretStore> {
  return new FileStore(name, resolveLayout(config, context), lockOptions(context.env, internals), context.journal, internals.afterLockFreeRead);
}

/**
 * `provkey init`: creates the key file (unless a passphrase is used) and an empty store.
 * Never overwrites: an existing key file is reused, and an existing store is only opened to
 * prove the key fits it (`created: false`). `keyFile` is the key file's path when one is used.
 */
export async function initFileStore(
  config: FileStoreConfig,
  context: AdapterContext,
  options: { passphrase?: string; storeName?: string },
): Promise<{ created: boolean; keyFile?: string }> {
  const layout = resolveLayout(config, context, options.passphrase);
  const keyFile = layout.key.mode === 'keyfile' ? layout.key.keyFile : undefined;
  const store = new FileStore(options.storeName ?? 'default', layout, lockOptions(context.env, {}), context.journal);
  const created = await store.initialise();
  return keyFile === undefined ? { created } : { created, keyFile };
}

function resolveLayout(config: FileStoreConfig, context: AdapterContext, passphrase?: string): Layout {
  const storeFile = path.resolve(context.configDir, config.path);
  let key: KeySource;
  if (passphrase !== undefined) {
    key = { mode: 'passphrase', envName: config.passphraseEnv, passphrase };
  } else if (config.passphraseEnv) {
    // Read from the environment only, never argv: a passphrase in argv is visible in `ps`.
    const fromEnv = context.env[config.passphraseEnv] || undefined;
    const prompt = context.promptSecret;
    key = {
      mode: 'passphrase',
      envName: config.passphraseEnv,
      passphrase: fromEnv,
      ...(fromEnv === undefined && prompt ? { ask: () => prompt(`Passphrase of the ${config.path} store (${config.passphraseEnv} is not set)`) } : {}),
    };
  } else {
    key = { mode: 'keyfile', keyFile: path.resolve(context.configDir, config.keyFile) };
  }
  return { storeFile, lockFile: `${storeFile}.lock`, key };
}

function lockOptions(env: NodeJS.ProcessEnv, internals: FileStoreInternals): LockOptions {
  const fromEnv = Number(env.PROVKEY_LOCK_TIMEOUT_MS);
  const timeoutMs = internals.lockTimeoutMs ?? (env.PROVKEY_LOCK_TIMEOUT_MS && Number.isSafeInteger(fromEnv) && fromEnv >= 0 ? fromEnv : undefined);
  return {
    timeoutMs: timeoutMs ?? defaultLockOptions.timeoutMs,
    staleAfterMs: internals.staleLockAfterMs ?? defaultLockOptions.staleAfterMs,
  };
}

/** What a rewrite needs to re-encrypt: the key and the kdf header it belongs to. */
interface Sealing {
  key: Buffer;
  kdf: Kdf;
}

/** A mutation's outcome; `write: false` skips the rewrite when nothing changed. */
interface Mutation<T> {
  result: T;
  write: boolean;
  /** false: creating the empty store, which holds nothing to roll back, stays at generation 0. */
  counts?: boolean;
}

class FileStore implements SecretStore {
  readonly name: string;
  readonly type = fileStoreType;
  readonly capabilities: StoreCapabilities = { compareAndSet: 'lock', nativeVersions: false, softDelete: false };
  private readonly layout: Layout;
  private readonly lock: LockOptions;
  /** The last bytes read and what they decrypted to (see readDocument). */
  private lastRead: { text: string; document: StoreDocument } | undefined;
  private readonly journal: StoreJournal | undefined;
  /** The key of the last envelope opened or sealed, for the audit chain key. */
  private lastKey: Buffer | undefined;

  private readonly afterLockFreeRead: (() => Promise<void>) | undefined;

  constructor(name: string, layout: Layout, lock: LockOptions, journal: StoreJournal | undefined, afterLockFreeRead?: () => Promise<void>) {
    this.name = name;
    this.layout = layout;
    this.lock = lock;
    this.journal = journal;
    this.afterLockFreeRead = afterLockFreeRead;
  }

  async listKeys(): Promise<string[]> {
    const document = await this.readDocument();
    return document.keys.map((k) => k.name).sort(compareNames);
  }

  async read(key: string): Promise<KeyRecord | undefined> {
    const found = findKey(await this.readDocument(), key);
    return found && toKeyRecord(found);
  }

  async addVersion(
    key: string,
    expectedRevision: string | undefined,
    secret: string,
    meta: NewVersionMeta,
    state?: LifecycleState,
  ): Promise<{ record: KeyRecord; versionId: string }> {
    if (typeof secret !== 'string' || secret.length === 0) throw fileStoreError('invalid', `refusing to store an empty value for ${key}`);
    return this.mutate((document) => {
      let record = findKey(document, key);
      if (expectedRevision === undefined && record) {
        throw new ConflictError('file', `${key} already exists (revision ${record.revision}); add a version with its current revision`);
      }
      if (expectedRevision !== undefined) record = checkRevision(record, key, expectedRevision);
      if (!record) {
        record = { name: key, revision: 0, lastVersionId: 0, versions: [], state: {} };
        document.keys.push(record);
      }
      const versionId = String(++record.lastVersionId);
      // Copy the known fields only, so nothing the caller attached by accident ends up stored.
      record.versions.push({
        id: versionId,
        label: meta.label,
        fingerprint: meta.fingerprint,
        createdAt: meta.createdAt,
        labelledAt: meta.labelledAt,
        ...(meta.graceUntil === undefined ? {} : { graceUntil: meta.graceUntil }),
        origin: meta.origin,
        ...(meta.expiresAt === undefined ? {} : { expiresAt: meta.expiresAt }),
        ...(meta.account === undefined ? {} : { account: meta.account }),
        value: secret,
      });
      if (state) record.state = structuredClone(state);
      record.revision = ++document.sequence;
      return { result: { record: toKeyRecord(record), versionId }, write: true };
    });
  }

  async update(key: string, expectedRevision: string, change: RecordChange): Promise<KeyRecord> {
    return this.mutate((document) => {
      const record = checkRevision(findKey(document, key), key, expectedRevision);
      record.versions = applyRecordChange(key, record.versions, change.versions, (message) => fileStoreError('invalid', message));
      record.state = structuredClone(change.state);
      record.revision = ++document.sequence;
      return { result: toKeyRecord(record), write: true };
    });
  }

  async readSecret(key: string, versionId: string): Promise<string> {
    const version = findVersion(await this.readDocument(), key, versionId);
    if (version.value === null) throw fileStoreError('not_found', `version ${versionId} of ${key} is disabled`);
    return version.value;
  }

  /**
   * Erases the value; the metadata stays so the history still shows the version. The revision
   * does not change (the record `read` returns is the same), as with a Vault soft delete.
   */
  async disableVersion(key: string, versionId: string, _options?: { destroy?: boolean }): Promise<void> {
    await this.mutate((document) => {
      const version = findVersion(document, key, versionId);
      const write = version.value !== null;
      version.value = null;
      return { result: undefined, write };
    });
  }

  /** Deleting a key that does not exist is not an error: `migrate` may retry. */
  async deleteKey(key: string): Promise<void> {
    await this.mutate((document) => {
      const before = document.keys.length;
      document.keys = document.keys.filter((k) => k.name !== key);
      if (document.keys.length !== before) document.sequence++;
      return { result: undefined, write: document.keys.length !== before };
    });
  }

  async close(): Promise<void> {
    // Nothing is held open between calls.
  }

  /**
   * The audit chain key: HKDF of this store's key (key file, or passphrase through scrypt).
   * Undefined while there is no key yet (no key file; a passphrase store not yet created).
   */
  async auditKey(options: { create: boolean } = { create: false }): Promise<AuditKey | undefined> {
    if (this.lastKey) return deriveAuditKey(this.lastKey);
    const envelope = await this.readEnvelope();
    if (envelope) {
      // Proven first (a wrong passphrase is refused, exit 6): a key that only looks right would
      // make every keyed line look forged.
      const key = await this.keyFor(envelope);
      this.decrypt(envelope, key);
      return deriveAuditKey(key);
    }
    const source = this.layout.key;
    if (source.mode !== 'keyfile') return undefined; // no salt before the store exists
    // Before the first write of a new store: the key file its first write would create anyway.
    const key = (await loadKeyFile(source.keyFile)) ?? (options.create ? await createKeyFile(source.keyFile) : undefined);
    return key && deriveAuditKey(key);
  }

  async generationState(): Promise<StoreGeneration> {
    const text = await this.readStoreText();
    if (text === undefined) return { store: this.name, file: this.layout.storeFile, generation: 0, exists: false };
    const envelope = parseEnvelope(text, this.layout.storeFile);
    const document = this.decrypt(envelope, await this.keyFor(envelope));
    return { store: this.name, file: this.layout.storeFile, generation: document.generation ?? 0, exists: true };
  }

  /** For initFileStore: true when a new store was written, false when one already existed (and opened). */
  async initialise(): Promise<boolean> {
    return this.mutate((_document, existed) => ({ result: !existed, write: !existed, counts: false }));
  }

  /** A missing store file is an empty store, so `status` works on a fresh machine without any key. */
  private async readDocument(): Promise<StoreDocument> {
    const text = await this.readStoreText();
    // The file is read every time (another process may have written it); only decrypting and
    // validating the very same bytes again is skipped. Readers never mutate the document.
    if (text !== undefined && this.lastRead?.text === text) return this.lastRead.document;
    const document = text === undefined ? undefined : await this.decryptText(text);
    await this.afterLockFreeRead?.();
    if (this.journal && (await this.generationProblemFor(document))) {
      // A reader holds no lock, so a writer may have committed between our read of the store
      // and of the log: read both again under the lock, where they are still, before refusing.
      return withFileLock(this.layout.lockFile, this.lock, async () => {
        const fresh = await this.readStoreText();
        const freshDocument = fresh === undefined ? undefined : await this.decryptText(fresh);
        await this.checkGeneration(freshDocument);
        if (fresh !== undefined) this.lastRead = { text: fresh, document: freshDocument! };
        return freshDocument ?? emptyDocument();
      });
    }
    if (text === undefined) return emptyDocument();
    this.lastRead = { text, document: document! };
    return document!;
  }

  private async decryptText(text: string): Promise<StoreDocument> {
    const envelope = parseEnvelope(text, this.layout.storeFile);
    return this.decrypt(envelope, await this.keyFor(envelope));
  }

  /** Refuses (exit 3) a store the audit log says is older or newer than it should be; callers hold the lock. */
  private async checkGeneration(document: StoreDocument | undefined): Promise<void> {
    if (!this.journal) return;
    const problem = await this.generationProblemFor(document);
    if (problem) throw new NeedsHumanError(`[file] ${problem}`, 'store.rollback');
  }

  private async generationProblemFor(document: StoreDocument | undefined): Promise<string | undefined> {
    const journal = this.journal!;
    const state = { store: this.name, file: this.layout.storeFile, generation: document?.generation ?? 0, exists: document !== undefined };
    return generationProblem(state, await journal.announced(this.name), journal.file);
  }

  /** Read, change and rewrite the whole store under the lock. `existed`: the store file was there. */
  private async mutate<T>(change: (document: StoreDocument, existed: boolean) => Mutation<T>): Promise<T> {
    const { storeFile, lockFile } = this.layout;
    try {
      await mkdir(path.dirname(storeFile), { recursive: true, mode: 0o700 });
    } catch (error) {
      throw fsFailure('create the directory of', storeFile, error);
    }
    try {
      return await withFileLock(lockFile, this.lock, async () => {
        // Under the lock no writer of this store is at work: any temp file a dead one left is garbage.
        // (A key file's temp holds a key: one left by a killed `init` is removed too.)
        const keyFile = this.layout.key.mode === 'keyfile' ? [this.layout.key.keyFile] : [];
        await removeStaleTemps([storeFile, lockFile, ...keyFile], this.lock.staleAfterMs);
        const envelope = await this.readEnvelope();
        const existingKey = envelope && (await this.keyFor(envelope));
        const document = envelope && this.decrypt(envelope, existingKey!);
        await this.checkGeneration(document);
        const sealing = envelope ? { key: existingKey!, kdf: envelope.kdf } : await this.newSealing();
        this.lastKey = sealing.key;
        const current = document ?? emptyDocument();
        const { result, write, counts = true } = change(current, envelope !== undefined);
        if (write) {
          if (counts) {
            current.generation = (current.generation ?? 0) + 1;
            // Announced before the commit: a store ahead of its log is then always a cut log.
            await this.journal?.announce(this.name, current.generation, storeFile);
          }
          const text = sealEnvelope(serializeDocument(current), sealing.key, sealing.kdf);
          try {
            await writeFileAtomic(storeFile, text);
          } catch (error) {
            throw fsFailure('write store file', storeFile, error);
          }
        }
        return result;
      });
    } catch (error) {
      throw fsFailure('lock store file', storeFile, error);
    }
  }

  private async readEnvelope(): Promise<Envelope | undefined> {
    const text = await this.readStoreText();
    return text === undefined ? undefined : parseEnvelope(text, this.layout.storeFile);
  }

  private async readStoreText(): Promise<string | undefined> {
    const { storeFile } = this.layout;
    try {
      // No symlink followed, no FIFO waited on (see io/safe-file.ts).
      return await readStateFile(storeFile, 'store file');
    } catch (error) {
      throw fsFailure('read store file', storeFile, error);
    }
  }

  private decrypt(envelope: Envelope, key: Buffer): StoreDocument {
    const { storeFile } = this.layout;
    return parseDocument(openEnvelope(envelope, key, storeFile, describeKeySource(this.layout.key)), storeFile);
  }

  /** The key for an existing store file. Never creates one: a new key would orphan the data. */
  private async keyFor(envelope: Envelope): Promise<Buffer> {
    const { storeFile, key: source } = this.layout;
    if (source.mode === 'keyfile') {
      if (envelope.kdf.type !== 'keyfile') {
        throw fileStoreError('invalid', `store file ${storeFile} is encrypted with a passphrase: set passphraseEnv for this store`);
      }
      const key = await loadKeyFile(source.keyFile);
      if (!key) {
        throw fileStoreError('invalid', `store file ${storeFile} exists but its key file ${source.keyFile} is missing: restore the key file (a new key cannot open the existing data)`);
      }
      return key;
    }
    if (envelope.kdf.type !== 'scrypt') {
      throw fileStoreError('invalid', `store file ${storeFile} is encrypted with a key file, not a passphrase: remove passphraseEnv for this store`);
    }
    return derivePassphraseKey(await requirePassphrase(source), envelope.kdf);
  }

  /** The key for a store file that does not exist yet: an existing key file is reused, else one is created. */
  private async newSealing(): Promise<Sealing> {
    const source = this.layout.key;
    if (source.mode === 'keyfile') {
      const key = (await loadKeyFile(source.keyFile)) ?? (await createKeyFile(source.keyFile));
      return { key, kdf: { type: 'keyfile' } };
    }
    const kdf = newScryptKdf();
    return { key: await derivePassphraseKey(await requirePassphrase(source), kdf), kdf };
  }
}

async function requirePassphrase(source: Extract<KeySource, { mode: 'passphrase' }>): Promise<string> {
  if (!source.passphrase && source.ask) {
    source.passphrase = await source.ask();
    delete source.ask;
  }
  if (!source.passphrase) {
    throw fileStoreError('invalid', source.envName === undefined ? 'the passphrase is empty' : `the passphrase environment variable ${source.envName} is not set`);
  }
  return source.passphrase;
}

function findKey(document: StoreDocument, key: string): StoredKey | undefined {
  return document.keys.find((k) => k.name === key);
}

function findVersion(document: StoreDocument, key: string, versionId: string) {
  const record = findKey(document, key);
  if (!record) throw fileStoreError('not_found', `key ${key} not found`);
  const version = record.versions.find((v) => v.id === versionId);
  if (!version) throw fileStoreError('not_found', `${key} has no version ${versionId}`);
  return version;
}

function checkRevision(record: StoredKey | undefined, key: string, expectedRevision: string): StoredKey {
  if (!record) throw new ConflictError('file', `${key} was deleted after revision ${expectedRevision} was read`);
  if (String(record.revision) !== expectedRevision) {
    throw new ConflictError('file', `${key} changed since revision ${expectedRevision} was read (now ${record.revision})`);
  }
  return record;
}
