import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { deriveAuditKey, type AuditKey } from '../audit/chain.js';
import { generationProblem, type StoreGeneration, type StoreJournal } from '../audit/generation.js';
import type { FileStoreConfig } from '../config/schema.js';
import { ConflictError, NeedsHumanError } from '../core/errors.js';
import type { KeyRecord, LifecycleState } from '../core/model.js';
import { syncDirectory } from '../io/atomic-write.js';
import { defaultLockOptions, withFileLock, type LockOptions } from '../io/file-lock.js';
import { openStateFile } from '../io/safe-file.js';
import { removeStaleTemps, tempPathFor } from '../io/stale-temp.js';
import type { AdapterContext } from './context.js';
import { beginImmediate, checkSchema, openConnection, sqliteMagic, writeNewDatabase } from './file/database.js';
import { keyCheck, type Kdf } from './file/envelope.js';
import { fileStoreError, fsFailure, sqliteFailure } from './file/errors.js';
import { readRawHeader, verifyHeader, writeHeader, type Header } from './file/header.js';
import { createKeyFile, derivePassphraseKey, describeKeySource, loadKeyFile, newScryptKdf, type KeySource } from './file/keys.js';
import {
  compareNames,
  deleteKeyRows,
  digestOfRows,
  eraseValue,
  keyIdHex,
  pruneValues,
  readAllKeys,
  readKey,
  readValue,
  storedShare,
  toKeyRecord,
  writeKey,
  writeValue,
  type RowContext,
  type StoredKey,
} from './file/rows.js';
import { deriveStoreKeys, headerMac, macMatches, xorInto, type StoreKeys } from './file/sealing.js';
import { legacyDocument, upgradeLegacyFile } from './file/upgrade.js';
import { applyRecordChange } from './record-change.js';
import type { NewVersionMeta, RecordChange, SecretStore, StoreCapabilities } from './store.js';

/**
 * The embedded store, provkey's default: a SQLite database (node:sqlite, WAL) at the config's
 * `path`, one row per key and one per version value, every row sealed with AES-256-GCM under
 * keys derived from the store key (file/sealing.ts), a MAC'd header carrying the generation
 * and a digest of all rows (file/header.ts). A write is one BEGIN IMMEDIATE transaction: its
 * compare-and-set reads and writes under the database's own lock, across processes. Reads
 * need no lock. A file written by provkey 0.1 is upgraded on first open (file/upgrade.ts).
 */

export const fileStoreType = 'file';

/** Test and tuning knobs, not part of provkey.yaml. */
export interface FileStoreInternals {
  /** Wait for another process's write transaction this long (default 10 s, or PROVKEY_LOCK_TIMEOUT_MS). */
  lockTimeoutMs?: number;
  /** The upgrade of a 0.1 store takes 0.1's lock file: take over one older than this (default 2 min). */
  staleLockAfterMs?: number;
  /** Tests: runs between the lock-free read of the generation and the log's (a barrier for the reader/writer race). */
  afterLockFreeRead?: () => Promise<void>;
  /** Tests: runs at a point of a 0.1 store's upgrade (a child process kills itself there). */
  upgradeAt?: (point: 'database-written' | 'backup-written') => Promise<void>;
}

interface Layout {
  storeFile: string;
  key: KeySource;
}

/** Opens the store lazily: nothing is read until the first call. */
export async function createFileStore(name: string, config: FileStoreConfig, context: AdapterContext, internals: FileStoreInternals = {}): Promise<SecretStore> {
  return new FileStore(name, resolveLayout(config, context), lockOptions(context.env, internals), context.journal, internals);
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
  const store = new FileStore(options.storeName ?? 'default', layout, lockOptions(context.env, {}), context.journal, {});
  try {
    const created = await store.initialise();
    return keyFile === undefined ? { created } : { created, keyFile };
  } finally {
    await store.close();
  }
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
  return { storeFile, key };
}

function lockOptions(env: NodeJS.ProcessEnv, internals: FileStoreInternals): LockOptions {
  const fromEnv = Number(env.PROVKEY_LOCK_TIMEOUT_MS);
  const timeoutMs = internals.lockTimeoutMs ?? (env.PROVKEY_LOCK_TIMEOUT_MS && Number.isSafeInteger(fromEnv) && fromEnv >= 0 ? fromEnv : undefined);
  return { timeoutMs: timeoutMs ?? defaultLockOptions.timeoutMs, staleAfterMs: internals.staleLockAfterMs ?? defaultLockOptions.staleAfterMs };
}

/** An open store: two connections (reads never queue behind this process's own write) and the keys. */
interface Connection {
  reader: DatabaseSync;
  writer: DatabaseSync;
  keys: StoreKeys;
  rows: RowContext;
  /** The generation the open-time check saw. */
  generation: number;
  /**
   * The database's write-ahead log, when this process syncs it itself (see durableUpTo): the
   * writer then commits with synchronous=NORMAL and fsyncs the log off the main thread.
   * Undefined: the writer commits with synchronous=FULL (SQLite fsyncs inside COMMIT).
   */
  wal: FileHandle | undefined;
  /**
   * The writer's view: every key row's digest share as verified (at open, or again when another
   * process committed since) plus this process's own commits, and the generation it is valid for.
   */
  known: { generation: number; shares: Map<string, Buffer> };
}

type FileKind = 'missing' | 'database' | 'legacy' | 'unknown';

/** A write's outcome; `write: false` rolls back (nothing changed, no generation spent). */
interface Change<T> {
  result: T;
  write: boolean;
}

interface QueuedWrite {
  change: (tx: WriteTransaction) => Change<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

type Outcome = { ok: true; result: unknown; write: boolean } | { ok: false; error: unknown };

/** One write transaction's view: the verified header (updated in place) and the rows. */
class WriteTransaction {
  readonly db: DatabaseSync;
  readonly rows: RowContext;
  readonly header: Header;
  /** The rows as this process knows them (verified against the digest, then its own commits). */
  private readonly known: Map<string, Buffer>;
  /** What earlier changes of this group wrote (undefined: row deleted). */
  private readonly earlier: Map<string, Buffer | undefined>;
  /** This change's new shares, applied to `known` once committed. */
  readonly changed = new Map<string, Buffer | undefined>();

  constructor(db: DatabaseSync, rows: RowContext, header: Header, known: Map<string, Buffer>, earlier: Map<string, Buffer | undefined>) {
    this.db = db;
    this.rows = rows;
    this.header = header;
    this.known = known;
    this.earlier = earlier;
  }

  /**
   * The key's row, refused when it is not the row this process knows: an older row put back
   * (or one removed) after the store was opened would otherwise be read, written over, and so
   * made consistent with the header's digest: laundered.
   */
  read(key: string): StoredKey | undefined {
    this.checkKnown(key);
    return readKey(this.db, this.rows, key);
  }

  /** The share of each row as it is in the database now, within this change (its own puts included). */
  private readonly stored = new Map<string, Buffer | undefined>();

  private checkKnown(key: string): Buffer | undefined {
    const id = keyIdHex(this.rows, key);
    // Within one change, under the write lock, a row changes only by this change's own writes.
    const stored = this.stored.has(id) ? this.stored.get(id) : storedShare(this.db, this.rows, key);
    this.stored.set(id, stored);
    const known = this.changed.has(id) ? this.changed.get(id) : this.earlier.has(id) ? this.earlier.get(id) : this.known.get(id);
    const same = stored === undefined ? known === undefined : known !== undefined && stored.equals(known);
    if (!same) {
      throw fileStoreError('tampered', `store file ${this.rows.file}: the row of ${key} changed outside provkey since the store was opened (edited, removed or put back from an older copy)`);
    }
    return stored;
  }

  /** Writes a key row under a new revision, keeping the header's digest and count in step. */
  put(key: StoredKey, options: { keepRevision?: boolean } = {}): void {
    const before = this.checkKnown(key.name);
    if (before) xorInto(this.header.digest, before);
    else this.header.keyCount++;
    if (!options.keepRevision) key.revision = ++this.header.sequence;
    const share = writeKey(this.db, this.rows, key);
    xorInto(this.header.digest, share);
    this.changed.set(keyIdHex(this.rows, key.name), share);
    this.stored.set(keyIdHex(this.rows, key.name), share);
  }

  remove(key: string): boolean {
    const before = this.checkKnown(key);
    if (!before) return false;
    xorInto(this.header.digest, before);
    this.header.keyCount--;
    this.header.sequence++;
    deleteKeyRows(this.db, this.rows, key);
    this.changed.set(keyIdHex(this.rows, key), undefined);
    this.stored.set(keyIdHex(this.rows, key), undefined);
    return true;
  }
}

class FileStore implements SecretStore {
  readonly name: string;
  readonly type = fileStoreType;
  readonly capabilities: StoreCapabilities = { compareAndSet: 'native', nativeVersions: false, softDelete: false };
  private readonly layout: Layout;
  private readonly lock: LockOptions;
  private readonly journal: StoreJournal | undefined;
  private readonly internals: FileStoreInternals;
  /** In flight or done; shared by every caller, so concurrent first calls open (and check) the store once. */
  private opening: Promise<Connection | undefined> | undefined;
  private checking: Promise<Connection | undefined> | undefined;
  /** The writer connection holds one transaction at a time (other processes queue on the database lock). */
  private writer: Promise<unknown> = Promise.resolve();

  constructor(name: string, layout: Layout, lock: LockOptions, journal: StoreJournal | undefined, internals: FileStoreInternals) {
    this.name = name;
    this.layout = layout;
    this.lock = lock;
    this.journal = journal;
    this.internals = internals;
  }

  async listKeys(): Promise<string[]> {
    const connection = await this.ready();
    if (!connection) return [];
    return this.reading(connection, (db) => readAllKeys(db, connection.rows).map((k) => k.name)).sort(compareNames);
  }

  async read(key: string): Promise<KeyRecord | undefined> {
    const connection = await this.ready();
    if (!connection) return undefined;
    const found = this.reading(connection, (db) => readKey(db, connection.rows, key));
    return found && toKeyRecord(found);
  }

  async readSecret(key: string, versionId: string): Promise<string> {
    const connection = await this.ready();
    if (!connection) throw fileStoreError('not_found', `key ${key} not found`);
    // The record and its value in one read transaction: a concurrent disable cannot fall between them.
    return this.reading(connection, (db) => {
      const version = findVersion(readKey(db, connection.rows, key), key, versionId);
      if (version.value === null) throw fileStoreError('not_found', `version ${versionId} of ${key} is disabled`);
      return readValue(db, connection.rows, key, version);
    });
  }

  async addVersion(
    key: string,
    expectedRevision: string | undefined,
    secret: string,
    meta: NewVersionMeta,
    state?: LifecycleState,
  ): Promise<{ record: KeyRecord; versionId: string }> {
    if (typeof secret !== 'string' || secret.length === 0) throw fileStoreError('invalid', `refusing to store an empty value for ${key}`);
    return this.write((tx) => {
      let record = tx.read(key);
      if (expectedRevision === undefined && record) {
        throw new ConflictError('file', `${key} already exists (revision ${record.revision}); add a version with its current revision`);
      }
      if (expectedRevision !== undefined) record = checkRevision(record, key, expectedRevision);
      record ??= { name: key, revision: 0, lastVersionId: 0, versions: [], state: {} };
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
        value: writeValue(tx.db, tx.rows, key, versionId, secret),
      });
      if (state) record.state = structuredClone(state);
      tx.put(record);
      return { result: { record: toKeyRecord(record), versionId }, write: true };
    });
  }

  async update(key: string, expectedRevision: string, change: RecordChange): Promise<KeyRecord> {
    return this.write((tx) => {
      const record = checkRevision(tx.read(key), key, expectedRevision);
      record.versions = applyRecordChange(key, record.versions, change.versions, (message) => fileStoreError('invalid', message));
      record.state = structuredClone(change.state);
      pruneValues(tx.db, tx.rows, record);
      tx.put(record);
      return { result: toKeyRecord(record), write: true };
    });
  }

  /**
   * Erases the value (its row is deleted; secure_delete overwrites it); the metadata stays so
   * the history still shows the version. The revision does not change (the record `read`
   * returns is the same), as with a Vault soft delete.
   */
  async disableVersion(key: string, versionId: string, _options?: { destroy?: boolean }): Promise<void> {
    await this.write((tx) => {
      const record = tx.read(key);
      const version = findVersion(record, key, versionId);
      if (version.value === null) return { result: undefined, write: false };
      version.value = null;
      eraseValue(tx.db, tx.rows, key, versionId);
      tx.put(record!, { keepRevision: true });
      return { result: undefined, write: true };
    });
  }

  /** Deleting a key that does not exist is not an error: `migrate` may retry. */
  async deleteKey(key: string): Promise<void> {
    if (!(await this.ready())) return;
    await this.write((tx) => ({ result: undefined, write: tx.remove(key) }));
  }

  async close(): Promise<void> {
    await this.flushing?.catch(() => undefined);
    await this.writer.catch(() => undefined);
    await this.settling;
    const connection = await this.opening?.catch(() => undefined);
    this.opening = undefined;
    this.checking = undefined;
    if (!connection) return;
    for (const db of [connection.reader, connection.writer]) if (db.isOpen) db.close();
    await connection.wal?.close().catch(() => undefined);
  }

  /**
   * The audit chain key: HKDF of this store's key (key file, or passphrase through scrypt).
   * Undefined while there is no key yet (no key file; a passphrase store not yet created).
   * Never consults the journal: the audit log asks for it while reading its own tail.
   */
  async auditKey(options: { create: boolean } = { create: false }): Promise<AuditKey | undefined> {
    const kind = await this.fileKind();
    if (kind === 'legacy') {
      // Proven first (a wrong passphrase is refused, exit 6): a key that only looks right would
      // make every keyed line look forged.
      return deriveAuditKey((await this.openLegacy()).key);
    }
    if (kind !== 'missing') {
      const connection = await this.connect();
      if (connection) return deriveAuditKey(connection.keys.master);
    }
    const source = this.layout.key;
    if (source.mode !== 'keyfile') return undefined; // no salt before the store exists
    // Before the first write of a new store: the key file its first write would create anyway.
    const key = (await loadKeyFile(source.keyFile)) ?? (options.create ? await createKeyFile(source.keyFile) : undefined);
    return key && deriveAuditKey(key);
  }

  /** The generation as stored, whatever the log says (`audit verify`, `audit accept-store`). */
  async generationState(): Promise<StoreGeneration> {
    const file = this.layout.storeFile;
    const kind = await this.fileKind();
    if (kind === 'missing') return { store: this.name, file, generation: 0, exists: false };
    if (kind === 'legacy') return { store: this.name, file, generation: (await this.openLegacy()).document.generation ?? 0, exists: true };
    const connection = await this.connect();
    if (!connection) return { store: this.name, file, generation: 0, exists: false };
    const header = this.reading(connection, (db) => verifyHeader(readRawHeader(db, file), connection.keys, file));
    return { store: this.name, file, generation: header.generation, exists: true };
  }

  /** For initFileStore: true when a new store was written, false when one already existed (and opened). */
  async initialise(): Promise<boolean> {
    if (await this.ready()) return false;
    return this.createDatabase();
  }

  /** The store opened and its generation agreeing with the audit log; undefined while there is no store. */
  private ready(): Promise<Connection | undefined> {
    this.checking ??= (async () => {
      if ((await this.fileKind()) === 'legacy') await this.upgrade();
      const connection = await this.connect();
      await this.checkOpenGeneration(connection);
      return connection;
    })();
    const checking = this.checking;
    // A store that does not exist yet may exist on the next call; a refusal is re-checked too.
    void checking.then(
      (connection) => {
        if (!connection && this.checking === checking) this.checking = undefined;
      },
      () => {
        if (this.checking === checking) this.checking = undefined;
      },
    );
    return checking;
  }

  /**
   * Lock-free (readers never wait for a writer): the generation read at open against the
   * log's. A writer announces before it commits, so a store read just before two commits looks
   * two behind: before refusing, both are read again under the write lock, where they are still.
   */
  private async checkOpenGeneration(connection: Connection | undefined): Promise<void> {
    if (!this.journal) return;
    await this.internals.afterLockFreeRead?.();
    if (!(await this.generationProblemAt(connection?.generation ?? 0, connection !== undefined))) return;
    if (!connection) {
      // No database, so no database lock: look once more (a first write may just have created it).
      const again = await this.connect();
      if (again) return this.checkOpenGeneration(again);
      const problem = await this.generationProblemAt(0, false);
      if (problem) throw new NeedsHumanError(`[file] ${problem}`, 'store.rollback');
      return;
    }
    await this.underWriteLock(connection, async (header) => {
      const problem = await this.generationProblemAt(header.generation, true);
      if (problem) throw new NeedsHumanError(`[file] ${problem}`, 'store.rollback');
    });
  }

  private async generationProblemAt(generation: number, exists: boolean): Promise<string | undefined> {
    const journal = this.journal;
    if (!journal) return undefined;
    const state = { store: this.name, file: this.layout.storeFile, generation, exists };
    return generationProblem(state, await journal.announced(this.name), journal.file);
  }

  private swept = false;

  /**
   * Before the first write: temp files a killed provkey left beside the store (a half-made
   * database, a key file's temp, which holds a key; 0.1's lock temps). Removed only when their
   * maker is provably gone (io/stale-temp.ts).
   */
  private async sweepOnce(): Promise<void> {
    if (this.swept) return;
    this.swept = true;
    const { storeFile, key } = this.layout;
    await removeStaleTemps([storeFile, `${storeFile}.lock`, ...(key.mode === 'keyfile' ? [key.keyFile] : [])], this.lock.staleAfterMs);
  }

  /**
   * Writes are queued and committed in groups: every write that arrives while a transaction is
   * committing goes into the next one. Each change runs in its own savepoint (its own
   * compare-and-set, its own error), and the group shares one generation, one announcement in
   * the audit log and one fsync: with 16 keys rotating at once, the cost of a durable commit
   * is paid once per group, not once per write. Each caller's promise settles after the commit.
   */
  private write<T>(change: (tx: WriteTransaction) => Change<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queued.push({ change, resolve: resolve as (value: unknown) => void, reject });
      this.flushing ??= this.flush();
    });
  }

  private queued: QueuedWrite[] = [];
  private flushing: Promise<void> | undefined;

  /**
   * Groups settle in commit order, each once its commit is durable (see durableUpTo): the next
   * group is already being built while the log of the one before is synced.
   */
  private settling: Promise<void> = Promise.resolve();

  private async flush(): Promise<void> {
    while (this.queued.length > 0) {
      const group = this.queued.splice(0);
      let committed: { outcomes: Outcome[]; durable: Promise<void> | undefined } | { error: unknown };
      try {
        committed = await this.commitGroup(group);
      } catch (error) {
        committed = { error };
      }
      const previous = this.settling;
      this.settling = (async () => {
        await previous;
        try {
          if ('error' in committed) throw committed.error;
          await committed.durable;
        } catch (error) {
          for (const item of group) item.reject(error);
          return;
        }
        for (const [i, outcome] of committed.outcomes.entries()) {
          if (outcome.ok) group[i]!.resolve(outcome.result);
          else group[i]!.reject(outcome.error);
        }
      })();
    }
    // Cleared in the same tick as the empty check above (not in a later .finally): a caller
    // resumed by this group that writes again at once must start a new flush, not be left queued.
    this.flushing = undefined;
  }

  private async commitGroup(group: QueuedWrite[]): Promise<{ outcomes: Outcome[]; durable: Promise<void> | undefined }> {
    await this.sweepOnce();
    let connection = await this.ready();
    if (!connection) {
      await this.createDatabase();
      connection = await this.ready();
      if (!connection) throw fileStoreError('server_error', `store file ${this.layout.storeFile} vanished right after it was created`);
    }
    const { rows, keys } = connection;
    let durable: Promise<void> | undefined;
    const outcomes = await this.underWriteLock(connection, async (header, db) => {
      const problem = await this.generationProblemAt(header.generation, true);
      if (problem) throw new NeedsHumanError(`[file] ${problem}`, 'store.rollback');
      // Another process committed since this one last looked: check all rows against the
      // header again (one query, no decryption) before trusting the writer's view of them.
      if (header.generation !== connection.known.generation) {
        const found = digestOfRows(db, rows);
        if (found.count !== header.keyCount || !found.digest.equals(header.digest)) {
          throw fileStoreError('tampered', `store file ${rows.file}: its rows do not match its header (${found.count} key rows, the header counts ${header.keyCount}): a row was removed, added, or put back from an older copy`);
        }
        connection.known = { generation: header.generation, shares: found.shares };
      }
      const known = connection.known.shares;
      const changed = new Map<string, Buffer | undefined>();
      const outcomes: Outcome[] = [];
      for (const item of group) {
        const before = { keyCount: header.keyCount, sequence: header.sequence, digest: Buffer.from(header.digest) };
        db.exec('SAVEPOINT change');
        try {
          const tx = new WriteTransaction(db, rows, header, known, changed);
          const { result, write } = item.change(tx);
          db.exec('RELEASE change');
          for (const [id, share] of tx.changed) changed.set(id, share);
          outcomes.push({ ok: true, result, write });
        } catch (error) {
          db.exec('ROLLBACK TO change');
          db.exec('RELEASE change');
          Object.assign(header, before);
          outcomes.push({ ok: false, error });
        }
      }
      if (!outcomes.some((o) => o.ok && o.write)) return { result: outcomes, commit: false };
      header.generation++;
      writeHeader(db, header, keys);
      // Until the commit is known to have happened, the view is not trusted.
      connection.known = { generation: -1, shares: known };
      // Every earlier commit durable before a later generation is announced (see durableUpTo).
      await this.durableUpTo(connection, header.generation - 1);
      // Announced before the commit: a store ahead of its log is then always a cut log.
      // `more`: writes already queued for the next group, whose announcement follows this commit.
      await this.journal?.announce(this.name, header.generation, this.layout.storeFile, () => this.queued.length > 0);
      return { result: outcomes, commit: true, onCommit: () => {
        for (const [id, share] of changed) {
          if (share) known.set(id, share);
          else known.delete(id);
        }
        connection.known = { generation: header.generation, shares: known };
        durable = this.syncAfterCommit(connection, header.generation);
      } };
    });
    return { outcomes, durable };
  }

  /** This process's last commit of `generation` and the fsync of the log that makes it durable. */
  private lastSync: { generation: number; done: Promise<void> } | undefined;

  /**
   * With synchronous=NORMAL, COMMIT writes the transaction to the write-ahead log without
   * fsyncing it, and this process fsyncs the log itself, on the thread pool, so the main thread
   * goes on (other keys' requests, the next group's changes) meanwhile. What FULL promised still
   * holds, because:
   * - a caller's write settles only after that fsync (flush): a write reported done is durable,
   *   as with FULL; a process that is killed loses nothing either way (the page cache keeps it);
   * - no later generation is announced before every commit up to it is durable: durableUpTo runs
   *   under the write lock before each announcement, so after a power loss the store is at most
   *   one generation behind the log (an announced write never committed), never two, which
   *   would read as a rollback;
   * - the log is synced by file: another process's commit since ours is made durable by the
   *   same fsync (a fresh one then, not ours in flight).
   * A failed fsync fails the writes of that commit and every later announcement that needs it.
   */
  private syncAfterCommit(connection: Connection, generation: number): Promise<void> | undefined {
    const wal = connection.wal;
    if (!wal) return undefined;
    const done = syncLog(wal, this.layout.storeFile);
    done.catch(() => undefined); // reported to the writes of the commit, and by durableUpTo
    this.lastSync = { generation, done };
    return done;
  }

  /** Every commit up to `generation` durable; called under the write lock (see syncAfterCommit). */
  private async durableUpTo(connection: Connection, generation: number): Promise<void> {
    const wal = connection.wal;
    if (!wal) return; // synchronous=FULL: every commit was durable before COMMIT returned
    const last = this.lastSync;
    // Our own commit is the last one (no other process committed since): its fsync covers it.
    if (last && last.generation === generation) return last.done;
    await syncLog(wal, this.layout.storeFile);
  }

  /**
   * Runs `body` inside BEGIN IMMEDIATE on the writer connection, with the header read and
   * verified under the lock. `body` returns `{ result, commit }`; anything else rolls back.
   */
  private underWriteLock<T>(connection: Connection, body: (header: Header, db: DatabaseSync) => Promise<{ result: T; commit: boolean; onCommit?: () => void } | void>): Promise<T> {
    const run = this.writer.then(() => this.inWriteTransaction(connection, body));
    this.writer = run.catch(() => undefined);
    return run;
  }

  private async inWriteTransaction<T>(connection: Connection, body: (header: Header, db: DatabaseSync) => Promise<{ result: T; commit: boolean; onCommit?: () => void } | void>): Promise<T> {
    const { writer } = connection;
    const file = this.layout.storeFile;
    await guarded('begin a write transaction on', file, () => beginImmediate(writer, this.lock.timeoutMs, file));
    let committed = false;
    try {
      const header = verifyHeader(guardedSync('read', file, () => readRawHeader(writer, file)), connection.keys, file);
      const outcome = await body(header, writer);
      if (outcome?.commit) {
        guardedSync('commit to', file, () => writer.exec('COMMIT'));
        committed = true;
        outcome.onCommit?.();
      }
      return outcome?.result as T;
    } finally {
      if (!committed && writer.isTransaction) writer.exec('ROLLBACK');
    }
  }

  /** A synchronous read on the reader connection, inside one read transaction (one snapshot). */
  private reading<T>(connection: Connection, body: (db: DatabaseSync) => T): T {
    const { reader } = connection;
    return guardedSync('read', this.layout.storeFile, () => {
      reader.exec('BEGIN');
      try {
        return body(reader);
      } finally {
        if (reader.isTransaction) reader.exec('COMMIT');
      }
    });
  }

  /** The database opened, its key proven, its header and row digest verified. No journal: see auditKey. */
  private connect(): Promise<Connection | undefined> {
    this.opening ??= this.openDatabase();
    const opening = this.opening;
    void opening.then(
      (connection) => {
        if (!connection && this.opening === opening) this.opening = undefined;
      },
      () => {
        if (this.opening === opening) this.opening = undefined;
      },
    );
    return opening;
  }

  private async openDatabase(): Promise<Connection | undefined> {
    const file = this.layout.storeFile;
    const kind = await this.fileKind();
    if (kind === 'missing') return undefined;
    if (kind === 'legacy') throw fileStoreError('invalid', `store file ${file} was written by provkey 0.1 and is not upgraded yet`);
    if (kind === 'unknown') throw fileStoreError('tampered', `store file ${file} is damaged (not a provkey database): it was modified or truncated`);
    let reader: DatabaseSync | undefined;
    let writer: DatabaseSync | undefined;
    try {
      reader = guardedSync('open', file, () => openConnection(file));
      writer = guardedSync('open', file, () => openConnection(file, 20));
      const db = reader;
      const raw = guardedSync('read', file, () => {
        checkSchema(db, file);
        return readRawHeader(db, file);
      });
      const master = await this.keyFor(raw.kdf);
      const keys = deriveStoreKeys(master);
      if (!macMatches(keyCheck(master), raw.keyCheck)) {
        // The header authenticating under this key means the key is right and the check was edited.
        if (macMatches(headerMac(keys, raw.row.kdf, raw.row.body), raw.row.mac)) {
          throw fileStoreError('tampered', `store file ${file}: its key check was edited (the header authenticates under this key)`);
        }
        throw fileStoreError('auth_failed', `cannot open store file ${file}: wrong key file or passphrase (${describeKeySource(this.layout.key)})`);
      }
      let shares = new Map<string, Buffer>();
      // Header and every row's id, revision and tag in one snapshot: a removed, added, moved or
      // older row put back is found here, before anything is read from the store.
      const header = guardedSync('read', file, () => {
        db.exec('BEGIN');
        try {
          const verified = verifyHeader(readRawHeader(db, file), keys, file);
          const rows = digestOfRows(db, { keys, storeId: verified.storeId, file });
          if (rows.count !== verified.keyCount || !rows.digest.equals(verified.digest)) {
            throw fileStoreError(
              'tampered',
              `store file ${file}: its rows do not match its header (${rows.count} key rows, the header counts ${verified.keyCount}): a row was removed, added, or put back from an older copy`,
            );
          }
          shares = rows.shares;
          return verified;
        } finally {
          db.exec('COMMIT');
        }
      });
      const wal = await openLog(file);
      if (wal) guardedSync('configure', file, () => writer!.exec('PRAGMA synchronous = NORMAL'));
      return { reader, writer, keys, rows: { keys, storeId: header.storeId, file, sealed: new Map() }, generation: header.generation, known: { generation: header.generation, shares }, wal };
    } catch (error) {
      for (const db of [reader, writer]) if (db?.isOpen) db.close();
      throw error;
    }
  }

  /** What is at the store's path, judged by its first bytes; a symlink or FIFO is refused (io/safe-file.ts). */
  private async fileKind(): Promise<FileKind> {
    const file = this.layout.storeFile;
    let handle;
    try {
      handle = await openStateFile(file, 'read', 'store file');
      if (!handle) return 'missing';
      const head = Buffer.alloc(sqliteMagic.length);
      const { bytesRead } = await handle.read(head, 0, head.length, 0);
      if (bytesRead === head.length && head.equals(sqliteMagic)) return 'database';
      // A 0.1 store is a JSON envelope; whether it really is one is for its parser to say.
      return bytesRead > 0 && head[0] === 0x7b ? 'legacy' : 'unknown';
    } catch (error) {
      throw fsFailure('read store file', file, error);
    } finally {
      await handle?.close();
    }
  }

  private async openLegacy() {
    const file = this.layout.storeFile;
    const { readStateFile } = await import('../io/safe-file.js');
    const text = await readStateFile(file, 'store file').catch((error: unknown) => {
      throw fsFailure('read store file', file, error);
    });
    if (text === undefined) throw fileStoreError('not_found', `store file ${file} vanished while it was read`);
    const { parseEnvelope } = await import('./file/envelope.js');
    const key = await this.keyFor(parseEnvelope(text, file).kdf);
    return { text, key, ...legacyDocument(text, file, key, describeKeySource(this.layout.key)) };
  }

  /**
   * Upgrades a provkey 0.1 store file in place (file/upgrade.ts), under the lock 0.1's writers
   * take. A store the log says is older than it should be is refused, never upgraded: the
   * upgrade would otherwise launder a put-back copy.
   */
  private async upgrade(): Promise<void> {
    const file = this.layout.storeFile;
    const lockFile = `${file}.lock`;
    try {
      await withFileLock(lockFile, this.lock, async () => {
        await removeStaleTemps([file, lockFile], this.lock.staleAfterMs);
        if ((await this.fileKind()) !== 'legacy') return; // another process upgraded it meanwhile
        const legacy = await this.openLegacy();
        const problem = await this.generationProblemAt(legacy.document.generation ?? 0, true);
        if (problem) throw new NeedsHumanError(`[file] ${problem}`, 'store.rollback');
        await upgradeLegacyFile(file, legacy.text, legacy.envelope, legacy.document, legacy.key, this.internals.upgradeAt);
      });
    } catch (error) {
      throw fsFailure('upgrade store file', file, error);
    }
  }

  /**
   * Creates an empty store: a complete database written to a temp file, then linked into place,
   * which fails if another process created the store first (its store is then used). Creating
   * stays at generation 0: an empty store holds nothing to roll back.
   */
  private async createDatabase(): Promise<boolean> {
    const file = this.layout.storeFile;
    try {
      await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    } catch (error) {
      throw fsFailure('create the directory of', file, error);
    }
    const { key, kdf } = await this.newKey();
    const keys = deriveStoreKeys(key);
    const temp = tempPathFor(file);
    try {
      await writeNewDatabase(temp, (db) =>
        writeHeader(db, { kdf, keyCheck: keyCheck(key), storeId: randomBytes(16).toString('hex'), generation: 0, sequence: 0, keyCount: 0, digest: Buffer.alloc(32) }, keys),
      );
      const placed = await placeNewFile(temp, file);
      await syncDirectory(path.dirname(file));
      return placed;
    } catch (error) {
      throw fsFailure('create store file', file, sqliteFailure('create', file, error));
    } finally {
      await rm(temp, { force: true });
    }
  }

  /** The key for an existing store. Never creates one: a new key would orphan the data. */
  private async keyFor(kdf: Kdf): Promise<Buffer> {
    const { storeFile, key: source } = this.layout;
    if (source.mode === 'keyfile') {
      if (kdf.type !== 'keyfile') throw fileStoreError('invalid', `store file ${storeFile} is encrypted with a passphrase: set passphraseEnv for this store`);
      const key = await loadKeyFile(source.keyFile);
      if (!key) {
        throw fileStoreError('invalid', `store file ${storeFile} exists but its key file ${source.keyFile} is missing: restore the key file (a new key cannot open the existing data)`);
      }
      return key;
    }
    if (kdf.type !== 'scrypt') throw fileStoreError('invalid', `store file ${storeFile} is encrypted with a key file, not a passphrase: remove passphraseEnv for this store`);
    return derivePassphraseKey(await requirePassphrase(source), kdf);
  }

  /** The key for a store that does not exist yet: an existing key file is reused, else one is created. */
  private async newKey(): Promise<{ key: Buffer; kdf: Kdf }> {
    const source = this.layout.key;
    if (source.mode === 'keyfile') {
      const keyFile = source.keyFile;
      // A key file's temp holds a key: one left by a killed `init` is removed.
      await removeStaleTemps([keyFile, this.layout.storeFile], this.lock.staleAfterMs);
      return { key: (await loadKeyFile(keyFile)) ?? (await createKeyFile(keyFile)), kdf: { type: 'keyfile' } };
    }
    const kdf = newScryptKdf();
    return { key: await derivePassphraseKey(await requirePassphrase(source), kdf), kdf };
  }
}

/**
 * The database's write-ahead log (`<file>-wal`, which the open connections keep in place), for
 * syncAfterCommit; undefined when it cannot be opened as a regular file (a symbolic link is not
 * followed): commits then stay synchronous=FULL. Its directory entry is synced once, so the log
 * itself survives a power loss, not only its contents.
 */
async function openLog(file: string): Promise<FileHandle | undefined> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(`${file}-wal`, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
    if (!(await handle.stat()).isFile()) throw new Error('not a regular file');
    await syncDirectory(path.dirname(file));
    return handle;
  } catch {
    await handle?.close().catch(() => undefined);
    return undefined;
  }
}

function syncLog(wal: FileHandle, file: string): Promise<void> {
  return wal.datasync().catch((error: unknown) => {
    throw fsFailure('sync the write-ahead log of', file, error);
  });
}

/** Links `temp` to `file` unless `file` exists (false then); rename where the file system has no hard links. */
async function placeNewFile(temp: string, file: string): Promise<boolean> {
  try {
    await link(temp, file);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') throw error;
    if (await stat(file).then(() => true, () => false)) return false;
    await rename(temp, file);
    return true;
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

function findVersion(record: StoredKey | undefined, key: string, versionId: string) {
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

function guardedSync<T>(action: string, file: string, body: () => T): T {
  try {
    return body();
  } catch (error) {
    throw sqliteFailure(action, file, error);
  }
}

async function guarded<T>(action: string, file: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    throw sqliteFailure(action, file, error);
  }
}
