import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { DatabaseSync } from 'node:sqlite';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { FileStoreConfig } from '../../src/config/schema.js';
import { AuditLog } from '../../src/audit/audit-log.js';
import { AdapterError, ExitCode, NeedsHumanError } from '../../src/core/errors.js';
import { fingerprint } from '../../src/core/fingerprint.js';
import type { AdapterContext } from '../../src/stores/context.js';
import { createFileStore, initFileStore, type FileStoreInternals } from '../../src/stores/file.js';
import type { NewVersionMeta, SecretStore } from '../../src/stores/store.js';
import { describeStoreContract } from '../contract/store-contract.js';
import { TS_SOURCE_HOOK } from '../harness/ts-source-child.ts';

/** Lets one test play a file system without hard links (a new store is then renamed into place). */
const linkSupport = vi.hoisted(() => ({ enabled: true }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  const link: typeof actual.link = (existing, created) =>
    linkSupport.enabled ? actual.link(existing, created) : Promise.reject(Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' }));
  return { ...actual, link, default: { ...actual, link } };
});

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const config: FileStoreConfig = { type: 'file', path: 'state/store.enc', keyFile: 'state/store.key' };
const passphraseConfig: FileStoreConfig = { ...config, passphraseEnv: 'TEST_PROVKEY_PASSPHRASE' };

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'provkey-file-store-'));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

function context(dir: string, env: NodeJS.ProcessEnv = {}): AdapterContext {
  return {
    configDir: dir,
    env,
    resolveSecret: async () => {
      throw new Error('not used by the file store');
    },
    debug: () => {},
  };
}

function open(dir: string, env: NodeJS.ProcessEnv = {}, cfg = config, internals: FileStoreInternals = {}): Promise<SecretStore> {
  return createFileStore('default', cfg, context(dir, env), internals);
}

const storePath = (dir: string) => path.join(dir, config.path);
const keyPath = (dir: string) => path.join(dir, config.keyFile);

function meta(secret: string): NewVersionMeta {
  const at = new Date().toISOString();
  return { label: 'current', fingerprint: fingerprint(secret), createdAt: at, labelledAt: at, origin: 'generated' };
}

async function kindOf(promise: Promise<unknown>): Promise<{ kind: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (!(error instanceof AdapterError)) throw error;
    return { kind: error.kind, message: error.message };
  }
  throw new Error('expected the promise to reject');
}

/** A store with one key and one known secret, written with a key file. */
async function seeded(dir: string, env: NodeJS.ProcessEnv = {}, cfg = config) {
  const store = await open(dir, env, cfg);
  const secret = `pk_${randomBytes(24).toString('base64url')}`;
  const key = 'entra-scim-prod';
  const { versionId } = await store.addVersion(key, undefined, secret, meta(secret), { lastRotatedAt: '2025-01-01T00:00:00.000Z' });
  return { store, secret, key, versionId };
}

describeStoreContract('file store, key file', async () => {
  const dir = await tempDir();
  return { store: await open(dir) };
});

describeStoreContract('file store, passphrase', async () => {
  const dir = await tempDir();
  return { store: await open(dir, { TEST_PROVKEY_PASSPHRASE: 'correct horse battery staple' }, passphraseConfig) };
});

/** Raw SQL on the store's database, as an attacker with write access to the file would do it. */
function raw<T>(dir: string, body: (db: DatabaseSync) => T): T {
  const db = new DatabaseSync(storePath(dir));
  try {
    return body(db);
  } finally {
    db.close();
  }
}

interface KeyRow {
  id: Uint8Array;
  revision: number;
  record: Uint8Array;
}
const keyRows = (dir: string) => raw(dir, (db) => db.prepare('SELECT id, revision, record FROM keys').all() as unknown as KeyRow[]);
const valueRows = (dir: string) => raw(dir, (db) => db.prepare('SELECT key_id, version, value FROM key_values').all() as unknown as { key_id: Uint8Array; version: number; value: Uint8Array }[]);
const putKeyRow = (dir: string, row: KeyRow) => raw(dir, (db) => db.prepare('INSERT OR REPLACE INTO keys (id, revision, record) VALUES (?, ?, ?)').run(row.id, row.revision, row.record));

describe('file store: at rest', () => {
  it('reads a missing store as empty and creates nothing until the first write', async () => {
    const dir = await tempDir();
    const store = await open(dir);
    expect(await store.listKeys()).toEqual([]);
    expect(await store.read('anything')).toBeUndefined();
    expect(await readdir(dir)).toEqual([]);
  });

  it('is a SQLite database in WAL mode, private (0600) with its key file, and leaves nothing behind once closed', async () => {
    const dir = await tempDir();
    const { store } = await seeded(dir);
    expect((await stat(keyPath(dir))).mode & 0o777).toBe(0o600);
    expect((await stat(storePath(dir))).mode & 0o777).toBe(0o600);
    expect((await stat(`${storePath(dir)}-wal`)).mode & 0o777, 'the WAL is as private as the database').toBe(0o600);
    expect((await stat(path.dirname(storePath(dir)))).mode & 0o777).toBe(0o700);
    expect((await readFile(storePath(dir))).subarray(0, 16).toString('latin1')).toBe('SQLite format 3\0');
    expect(raw(dir, (db) => db.prepare('PRAGMA journal_mode').get())).toEqual({ journal_mode: 'wal' });
    await store.close();
    // No temp, lock, WAL or shared-memory file is left behind.
    expect((await readdir(path.dirname(storePath(dir)))).sort()).toEqual(['store.enc', 'store.key']);
  });

  it('keeps no secret, fingerprint or key name in clear in the file', async () => {
    const dir = await tempDir();
    const { store, secret, key } = await seeded(dir);
    await store.close();
    const bytes = await readFile(storePath(dir));
    expect(bytes.includes(secret)).toBe(false);
    expect(bytes.includes(Buffer.from(secret).toString('base64'))).toBe(false);
    expect(bytes.includes(fingerprint(secret))).toBe(false);
    expect(bytes.includes(key)).toBe(false);
  });

  it('keeps one row per key and one per version value, each sealed with a fresh IV on every write', async () => {
    const dir = await tempDir();
    const { store, key } = await seeded(dir);
    await store.addVersion('second', undefined, 'second-value', meta('second-value'));
    expect(keyRows(dir)).toHaveLength(2);
    expect(valueRows(dir)).toHaveLength(2);
    const before = keyRows(dir).map((r) => Buffer.from(r.record).subarray(0, 12).toString('hex'));
    const record = (await store.read(key))!;
    await store.update(key, record.revision, { versions: record.versions, state: record.state });
    const after = keyRows(dir).map((r) => Buffer.from(r.record).subarray(0, 12).toString('hex'));
    expect(after.filter((iv) => !before.includes(iv)), 'only the written row changed').toHaveLength(1);
  });

  it('survives a new process: a second store instance reads what the first wrote', async () => {
    const dir = await tempDir();
    const { secret, key, versionId } = await seeded(dir);
    const again = await open(dir);
    expect(await again.readSecret(key, versionId)).toBe(secret);
  });

  it('disabling a version erases its value row; the metadata stays', async () => {
    const dir = await tempDir();
    const { store, key, versionId, secret } = await seeded(dir);
    const revision = (await store.read(key))!.revision;
    await store.disableVersion(key, versionId);
    expect(valueRows(dir)).toHaveLength(0);
    expect((await store.read(key))!.revision, 'a disable keeps the revision').toBe(revision);
    await store.close();
    expect((await readFile(storePath(dir))).includes(secret)).toBe(false);
  });
});

describe('file store: tampering and wrong keys', () => {
  /** A store with two keys, closed, so the attacker edits a quiet file. */
  async function twoKeys(dir: string) {
    const { store, key, versionId, secret } = await seeded(dir);
    await store.addVersion('other', undefined, 'other-value-0123456789', meta('other-value-0123456789'));
    await store.close();
    return { key, versionId, secret };
  }

  async function expectTampered(promise: Promise<unknown>, pattern: RegExp) {
    const error = await kindOf(promise);
    expect(error.kind).toBe('tampered');
    expect(error.message).toMatch(pattern);
    expect(error.message.split('\n')).toHaveLength(1);
    return error;
  }

  it('an edited key row (a flipped ciphertext byte) fails authentication, whole: never half-read', async () => {
    const dir = await tempDir();
    const { key, secret } = await twoKeys(dir);
    for (const row of keyRows(dir)) {
      const record = Buffer.from(row.record);
      record[record.length - 1]! ^= 0x01;
      putKeyRow(dir, { ...row, record });
    }
    const store = await open(dir);
    const error = await expectTampered(store.listKeys(), /a key row failed authentication/);
    expect(error.message).not.toContain(secret);
    await expectTampered(store.read(key), /a key row failed authentication/);
    // A write must not paper over the damage either: the damaged key cannot be written, and
    // a write to another key leaves the damage in place.
    await expectTampered(store.update(key, '1', { versions: [], state: {} }), /a key row failed authentication/);
    await store.addVersion('third', undefined, 'x-secret-value', meta('x-secret-value'));
    await expectTampered((await open(dir)).read(key), /a key row failed authentication/);
  });

  it('a row this store itself wrote, edited afterwards, is refused by the same open store (it knows its rows by their bytes, not by name)', async () => {
    const dir = await tempDir();
    const { store, key, secret } = await seeded(dir);
    const before = (await store.read(key))!;
    await store.update(key, before.revision, { versions: before.versions, state: { ...before.state, lastRotatedAt: '2026-01-01T00:00:00.000Z' } });
    for (const row of keyRows(dir)) {
      const record = Buffer.from(row.record);
      record[record.length - 1]! ^= 0x01;
      putKeyRow(dir, { ...row, record });
    }
    const error = await expectTampered(store.read(key), /a key row failed authentication/);
    expect(error.message).not.toContain(secret);
    await expectTampered(store.listKeys(), /a key row failed authentication/);
  });

  it('an edited revision or tag no longer matches the header digest (found on open)', async () => {
    const dir = await tempDir();
    await twoKeys(dir);
    const row = keyRows(dir)[0]!;
    putKeyRow(dir, { ...row, revision: row.revision + 1 });
    await expectTampered((await open(dir)).read('other'), /rows do not match its header/);
    putKeyRow(dir, row);
    expect(await (await open(dir)).listKeys()).toEqual(['entra-scim-prod', 'other']);
  });

  it('key rows swapped between two keys are refused, on open and by a store that is already open', async () => {
    const dir = await tempDir();
    const { key } = await twoKeys(dir);
    const openBefore = await open(dir);
    expect(await openBefore.listKeys()).toHaveLength(2);
    const [a, b] = keyRows(dir) as [KeyRow, KeyRow];
    raw(dir, (db) => {
      db.prepare('UPDATE keys SET revision = ?, record = ? WHERE id = ?').run(b.revision, b.record, a.id);
      db.prepare('UPDATE keys SET revision = ?, record = ? WHERE id = ?').run(a.revision, a.record, b.id);
    });
    await expectTampered((await open(dir)).read(key), /rows do not match its header/);
    await expectTampered(openBefore.read(key), /a key row failed authentication/);
  });

  it('a deleted key row is found on open (the header counts the rows)', async () => {
    const dir = await tempDir();
    const { key } = await twoKeys(dir);
    const row = keyRows(dir)[0]!;
    raw(dir, (db) => db.prepare('DELETE FROM keys WHERE id = ?').run(row.id));
    await expectTampered((await open(dir)).read(key), /1 key rows, the header counts 2/);
  });

  it('an older, authentic key row put back (a revoked value brought back to life) is found on open', async () => {
    const dir = await tempDir();
    const { store, key, versionId, secret } = await seeded(dir);
    const oldRows = keyRows(dir);
    const oldValues = valueRows(dir);
    await store.disableVersion(key, versionId);
    await store.close();
    // The attacker restores the key row and the value row from before the disable.
    putKeyRow(dir, oldRows[0]!);
    raw(dir, (db) => db.prepare('INSERT INTO key_values (key_id, version, value) VALUES (?, ?, ?)').run(oldValues[0]!.key_id, oldValues[0]!.version, oldValues[0]!.value));
    const error = await expectTampered((await open(dir)).readSecret(key, versionId), /rows do not match its header/);
    expect(error.message).not.toContain(secret);
  });

  it('an older row put back while a store is open is refused by its next write, not laundered into the digest', async () => {
    const dir = await tempDir();
    const { store, key } = await seeded(dir);
    const old = keyRows(dir)[0]!;
    const oldRecord = (await store.read(key))!;
    const newer = await store.update(key, oldRecord.revision, { versions: oldRecord.versions, state: { lastRotatedAt: 'newer' } });
    // Another process writing meanwhile is fine: its commit moves the generation, and the rows are checked again.
    const other = await open(dir);
    await other.addVersion('from-another-process', undefined, 'another-value-0123', meta('another-value-0123'));
    putKeyRow(dir, old);
    await expectTampered(store.update(key, oldRecord.revision, { versions: oldRecord.versions, state: {} }), /changed outside provkey since the store was opened|rows do not match its header/);
    await expectTampered(store.update(key, newer.revision, { versions: newer.versions, state: {} }), /changed outside provkey since the store was opened|rows do not match its header/);
    await expectTampered((await open(dir)).read(key), /rows do not match its header/);
  });

  it('the same replay with no other writer in between is caught by the row check alone', async () => {
    const dir = await tempDir();
    const { store, key } = await seeded(dir);
    const old = keyRows(dir)[0]!;
    const record = (await store.read(key))!;
    await store.update(key, record.revision, { versions: record.versions, state: { lastRotatedAt: 'newer' } });
    putKeyRow(dir, old);
    await expectTampered(store.update(key, record.revision, { versions: record.versions, state: {} }), /the row of entra-scim-prod changed outside provkey since the store was opened/);
  });

  it('a deleted value row, or a value moved to another version, is refused when read', async () => {
    const dir = await tempDir();
    const { store, key, versionId } = await seeded(dir);
    const second = await store.addVersion(key, (await store.read(key))!.revision, 'second-value-0123456789', meta('second-value-0123456789'));
    await store.close();
    const [v1, v2] = valueRows(dir);
    raw(dir, (db) => db.prepare('UPDATE key_values SET value = ? WHERE version = ?').run(v1!.value, v2!.version));
    await expectTampered((await open(dir)).readSecret(key, second.versionId), /is not the one its record pins/);
    raw(dir, (db) => db.prepare('DELETE FROM key_values WHERE version = ?').run(v1!.version));
    await expectTampered((await open(dir)).readSecret(key, versionId), /is missing although its record holds one/);
  });

  it('an edited header (generation, digest) fails its MAC; an edited key check alone is tampering, not a wrong key', async () => {
    const dir = await tempDir();
    await twoKeys(dir);
    const header = raw(dir, (db) => db.prepare('SELECT body, key_check FROM header').get() as { body: string; key_check: Uint8Array });
    const body = JSON.parse(header.body);
    raw(dir, (db) => db.prepare('UPDATE header SET body = ?').run(JSON.stringify({ ...body, generation: body.generation + 5 })));
    await expectTampered((await open(dir)).listKeys(), /header failed authentication/);
    raw(dir, (db) => db.prepare('UPDATE header SET body = ?').run(header.body));
    const check = Buffer.from(header.key_check);
    check[0]! ^= 0x01;
    raw(dir, (db) => db.prepare('UPDATE header SET key_check = ?').run(check));
    await expectTampered((await open(dir)).listKeys(), /key check was edited/);
  });

  it('reports a truncated, emptied or replaced file as tampered', async () => {
    const dir = await tempDir();
    await twoKeys(dir);
    const original = await readFile(storePath(dir));
    for (const length of [0, 1, 40, original.length >> 1, 4096]) {
      await writeFile(storePath(dir), original.subarray(0, length));
      expect((await kindOf((await open(dir)).listKeys())).kind, `truncated to ${length} bytes`).toBe('tampered');
    }
    await writeFile(storePath(dir), 'not a store at all');
    expect((await kindOf((await open(dir)).listKeys())).kind).toBe('tampered');
  });

  it('tells a wrong key file apart from tampering (auth_failed)', async () => {
    const dir = await tempDir();
    const { store, key } = await seeded(dir);
    await store.close();
    await writeFile(keyPath(dir), randomBytes(32).toString('base64'), { mode: 0o600 });
    const error = await kindOf((await open(dir)).read(key));
    expect(error.kind).toBe('auth_failed');
    expect(error.message).toContain('wrong key file or passphrase');
    expect(error.message).toContain(keyPath(dir));
  });

  for (const mode of [0o640, 0o604, 0o660]) {
    it(`refuses a key file with mode ${mode.toString(8)}, telling how to fix it`, async () => {
      const dir = await tempDir();
      const { key } = await seeded(dir);
      await chmod(keyPath(dir), mode);
      const error = await kindOf((await open(dir)).read(key));
      expect(error.kind).toBe('invalid');
      expect(error.message).toContain(keyPath(dir));
      expect(error.message).toContain(`chmod 600 ${keyPath(dir)}`);
      expect(error.message.split('\n')).toHaveLength(1);
      await chmod(keyPath(dir), 0o600);
      expect(await (await open(dir)).read(key)).toBeDefined();
    });
  }

  it('refuses a key file that does not hold a 32-byte key', async () => {
    const dir = await tempDir();
    const { key } = await seeded(dir);
    await writeFile(keyPath(dir), 'c2hvcnQ=\n', { mode: 0o600 });
    expect((await kindOf((await open(dir)).read(key))).kind).toBe('invalid');
  });

  it('never creates a new key when the store exists but its key file is gone', async () => {
    const dir = await tempDir();
    const { key } = await seeded(dir);
    await rm(keyPath(dir));
    const store = await open(dir);
    const error = await kindOf(store.addVersion('another', undefined, 'value-1', meta('value-1')));
    expect(error.kind).toBe('invalid');
    expect(error.message).toContain(keyPath(dir));
    expect((await kindOf(store.read(key))).kind).toBe('invalid');
    await expect(stat(keyPath(dir))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('keeps secrets out of every error message', async () => {
    const dir = await tempDir();
    const { store, key, secret, versionId } = await seeded(dir);
    await store.disableVersion(key, versionId);
    const errors = [
      await kindOf(store.readSecret(key, versionId)),
      await kindOf(store.addVersion(key, undefined, secret, meta(secret))),
      await kindOf(store.update(key, '999', { versions: [], state: {} })),
    ];
    expect(errors.map((e) => e.kind)).toEqual(['not_found', 'conflict', 'conflict']);
    expect(errors[0]!.message).toBe(`[file] version ${versionId} of ${key} is disabled`);
    for (const error of errors) expect(error.message).not.toContain(secret);
  });
});

describe('file store: replay of the whole file', () => {
  it('an older copy of the database put back is refused on open (exit 3), against the audit log', async () => {
    const dir = await tempDir();
    const log = new AuditLog(path.join(dir, 'state/audit.jsonl'));
    const withLog = () => createFileStore('default', config, { ...context(dir), journal: log });
    const store = await withLog();
    const { record, versionId } = await store.addVersion('app', undefined, 'value-one-0123456789', meta('value-one-0123456789'));
    await store.close();
    const copy = await readFile(storePath(dir));
    const again = await withLog();
    await again.addVersion('app', record.revision, 'value-two-0123456789', meta('value-two-0123456789'));
    await again.disableVersion('app', versionId);
    await again.close();
    await writeFile(storePath(dir), copy);
    const error = await kindOf((await withLog()).readSecret('app', versionId)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NeedsHumanError);
    expect((error as NeedsHumanError).exitCode).toBe(ExitCode.needsHuman);
    expect((error as Error).message).toMatch(/at generation 1 but the audit log .* records generation 3: an older copy of the store was put back/);
  });
});

describe('file store: passphrase', () => {
  const env = { TEST_PROVKEY_PASSPHRASE: 'correct horse battery staple' };
  const kdfOf = (dir: string) => JSON.parse(raw(dir, (db) => (db.prepare('SELECT kdf FROM header').get() as { kdf: string }).kdf));

  it('round-trips through scrypt with no key file, and the salt sits in the header', async () => {
    const dir = await tempDir();
    const { store, secret, key, versionId } = await seeded(dir, env, passphraseConfig);
    const again = await open(dir, { ...env }, passphraseConfig);
    expect(await again.readSecret(key, versionId)).toBe(secret);
    await expect(stat(keyPath(dir))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(kdfOf(dir)).toMatchObject({ type: 'scrypt', N: 32768, r: 8, p: 1 });
    expect(Buffer.from(kdfOf(dir).salt, 'base64')).toHaveLength(16);
    await Promise.all([store.close(), again.close()]);
    expect((await readFile(storePath(dir), 'utf8')).includes(env.TEST_PROVKEY_PASSPHRASE)).toBe(false);
  });

  it('keeps the salt across writes, so the derived key is reused', async () => {
    const dir = await tempDir();
    const { store } = await seeded(dir, env, passphraseConfig);
    const salt = kdfOf(dir).salt;
    await store.addVersion('second', undefined, 'second-value', meta('second-value'));
    expect(kdfOf(dir).salt).toBe(salt);
  });

  it('reports a wrong passphrase as auth_failed, naming the variable but not the passphrase', async () => {
    const dir = await tempDir();
    const { key } = await seeded(dir, env, passphraseConfig);
    const wrong = await open(dir, { TEST_PROVKEY_PASSPHRASE: 'incorrect horse' }, passphraseConfig);
    const error = await kindOf(wrong.read(key));
    expect(error.kind).toBe('auth_failed');
    expect(error.message).toContain('wrong key file or passphrase');
    expect(error.message).toContain('$TEST_PROVKEY_PASSPHRASE');
    expect(error.message).not.toContain('incorrect horse');
  });

  it('asks for the variable when the store exists and the passphrase is not set', async () => {
    const dir = await tempDir();
    await seeded(dir, env, passphraseConfig);
    const error = await kindOf((await open(dir, {}, passphraseConfig)).listKeys());
    expect(error.kind).toBe('invalid');
    expect(error.message).toContain('TEST_PROVKEY_PASSPHRASE');
    // On a fresh machine status still works without it.
    expect(await (await open(await tempDir(), {}, passphraseConfig)).listKeys()).toEqual([]);
  });

  it('says which kind of key a store needs when the config disagrees', async () => {
    const dir = await tempDir();
    await seeded(dir);
    expect((await kindOf((await open(dir, env, passphraseConfig)).listKeys())).message).toContain('encrypted with a key file');
    const other = await tempDir();
    await seeded(other, env, passphraseConfig);
    expect((await kindOf((await open(other)).listKeys())).message).toContain('encrypted with a passphrase');
  });
});

describe('initFileStore', () => {
  it('creates a key file and an empty store, and never overwrites them', async () => {
    const dir = await tempDir();
    const ctx = context(dir);
    expect(await initFileStore(config, ctx, {})).toEqual({ created: true, keyFile: keyPath(dir) });
    expect((await stat(keyPath(dir))).mode & 0o777).toBe(0o600);
    const key = await readFile(keyPath(dir), 'utf8');
    expect(Buffer.from(key.trim(), 'base64')).toHaveLength(32);
    expect(await (await open(dir)).listKeys()).toEqual([]);

    const store = await readFile(storePath(dir));
    expect(await initFileStore(config, ctx, {})).toEqual({ created: false, keyFile: keyPath(dir) });
    expect(await readFile(keyPath(dir), 'utf8')).toBe(key);
    expect(await readFile(storePath(dir))).toEqual(store);
  });

  it('reuses an existing key file rather than replacing it', async () => {
    const dir = await tempDir();
    const { store } = await seeded(dir);
    await store.close();
    const key = await readFile(keyPath(dir), 'utf8');
    await rm(storePath(dir));
    expect((await initFileStore(config, context(dir), {})).created).toBe(true);
    expect(await readFile(keyPath(dir), 'utf8')).toBe(key);
    expect(await (await open(dir)).listKeys()).toEqual([]);
  });

  it('checks that the key opens an existing store', async () => {
    const dir = await tempDir();
    await seeded(dir);
    await writeFile(keyPath(dir), randomBytes(32).toString('base64'), { mode: 0o600 });
    expect((await kindOf(initFileStore(config, context(dir), {}))).kind).toBe('auth_failed');
  });

  it('creates a passphrase store without a key file', async () => {
    const dir = await tempDir();
    expect(await initFileStore(passphraseConfig, context(dir), { passphrase: 'init passphrase' })).toEqual({ created: true });
    await expect(stat(keyPath(dir))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await (await open(dir, { TEST_PROVKEY_PASSPHRASE: 'init passphrase' }, passphraseConfig)).listKeys()).toEqual([]);
  });

  it('creates the store without hard links too (some network and FUSE file systems)', async () => {
    linkSupport.enabled = false;
    try {
      const fresh = await tempDir();
      expect((await initFileStore(config, context(fresh), {})).created).toBe(true);
      expect((await stat(keyPath(fresh))).mode & 0o777).toBe(0o600);
      expect((await stat(storePath(fresh))).mode & 0o777).toBe(0o600);
      expect(await (await open(fresh)).listKeys()).toEqual([]);
    } finally {
      linkSupport.enabled = true;
    }
  });
});

describe('file store: concurrency (the database lock)', () => {
  /** Another process's write transaction, held open (SQLite locks across connections in one process too). */
  function holdWriteLock(dir: string): { release: () => void } {
    const db = new DatabaseSync(storePath(dir));
    db.exec('BEGIN IMMEDIATE');
    db.exec("UPDATE header SET body = body WHERE id = 1");
    return {
      release: () => {
        db.exec('ROLLBACK');
        db.close();
      },
    };
  }

  it('a write waits for another writer and gives up with kind locked (PROVKEY_LOCK_TIMEOUT_MS); nothing is written', async () => {
    const dir = await tempDir();
    const { store: first } = await seeded(dir);
    await first.close();
    const store = await open(dir, { PROVKEY_LOCK_TIMEOUT_MS: '100' });
    const holder = holdWriteLock(dir);
    try {
      const error = await kindOf(store.addVersion('blocked', undefined, 'value-4', meta('value-4')));
      expect(error.kind).toBe('locked');
      expect(error.message).toContain(storePath(dir));
    } finally {
      holder.release();
    }
    expect(await store.listKeys()).toEqual(['entra-scim-prod']);
    await store.addVersion('after', undefined, 'value-5', meta('value-5'));
    expect(await store.listKeys()).toEqual(['after', 'entra-scim-prod']);
  });

  it('proceeds once the other writer is done', async () => {
    const dir = await tempDir();
    const { store } = await seeded(dir);
    const holder = holdWriteLock(dir);
    const writing = store.addVersion('waited', undefined, 'value-5', meta('value-5'));
    setImmediate(() => holder.release());
    await writing;
    expect(await store.listKeys()).toContain('waited');
  });

  it('reads never wait for a writer, and see only what it committed', async () => {
    const dir = await tempDir();
    const { store, key, secret, versionId } = await seeded(dir);
    const db = new DatabaseSync(storePath(dir));
    db.exec('BEGIN IMMEDIATE');
    db.exec('DELETE FROM key_values');
    try {
      expect(await store.readSecret(key, versionId)).toBe(secret);
      expect(await (await open(dir)).listKeys()).toEqual([key]);
    } finally {
      db.exec('ROLLBACK');
      db.close();
    }
  });

  it('writes made together commit together (one generation, one fsync); each keeps its own compare-and-set and error', async () => {
    const dir = await tempDir();
    const { store, key } = await seeded(dir);
    const before = (await store.generationState!()).generation;
    const record = (await store.read(key))!;
    const results = await Promise.allSettled([
      store.update(key, record.revision, { versions: record.versions, state: { lastRotatedAt: 'a' } }),
      store.update(key, record.revision, { versions: record.versions, state: { lastRotatedAt: 'b' } }),
      ...Array.from({ length: 8 }, (_, i) => store.addVersion(`grouped-${i}`, undefined, `grouped-value-${i}`, meta(`grouped-value-${i}`))),
      store.update('no-such-key', '1', { versions: [], state: {} }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', ...Array(8).fill('fulfilled'), 'rejected']);
    expect(((results[1] as PromiseRejectedResult).reason as AdapterError).kind).toBe('conflict');
    expect((await store.read(key))!.state).toEqual({ lastRotatedAt: 'a' });
    expect(await store.listKeys()).toHaveLength(9);
    // The first write ran alone (nothing else was queued yet); the other nine shared one transaction.
    expect((await store.generationState!()).generation - before).toBe(2);
    // The failed writes left no trace in the header: a fresh open verifies the digest and count.
    expect(await (await open(dir)).listKeys()).toHaveLength(9);
  });

  it('loses no update when two processes each add 50 versions with read-modify-write', async () => {
    const dir = await tempDir();
    const script = path.join(dir, 'increment.mjs');
    await writeFile(script, childScript);
    // A start barrier: each child says "ready" once loaded, and both get "go" together, so a
    // slow start of one cannot turn the race into two runs one after the other.
    let ready = 0;
    const children: ChildProcess[] = [];
    const run = (worker: string) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ['--no-warnings', script], {
          env: { ...process.env, STORE_DIR: dir, WORKER: worker, COUNT: '50', SRC: pathToFileURL(path.join(repoRoot, 'src/stores/file.ts')).href },
        });
        children.push(child);
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => {
          stdout += d;
          if (stdout === 'ready\n' && ++ready === 2) for (const c of children) c.stdin?.end('go\n');
        });
        child.stderr.on('data', (d) => (stderr += d));
        child.on('close', (code) => resolve({ code, stdout: stdout.replace('ready\n', ''), stderr }));
      });
    // The store exists before the race, so both open the same database.
    await initFileStore(config, context(dir), {});
    const results = await Promise.all([run('a'), run('b')]);
    for (const result of results) expect(result, result.stderr).toMatchObject({ code: 0 });
    const conflicts = results.map((r) => (JSON.parse(r.stdout) as { conflicts: number }).conflicts);

    const store = await open(dir);
    const record = (await store.read('counter'))!;
    expect(record.versions).toHaveLength(100);
    expect(record.versions.map((v) => v.id)).toEqual(Array.from({ length: 100 }, (_, i) => String(i + 1)));
    const values = await Promise.all(record.versions.map((v) => store.readSecret('counter', v.id)));
    expect(values.filter((v) => v.startsWith('a-'))).toHaveLength(50);
    expect(values.filter((v) => v.startsWith('b-'))).toHaveLength(50);
    // Both really raced (a serial run would switch workers once and never lose a compare-and-set).
    const switches = values.filter((v, i) => i > 0 && v[0] !== values[i - 1]![0]).length;
    expect(switches > 1 || conflicts[0]! + conflicts[1]! > 0).toBe(true);
    // Each worker's own values stay in the order it wrote them.
    for (const worker of ['a', 'b']) {
      const mine = values.filter((v) => v.startsWith(`${worker}-`)).map((v) => Number(v.split('-')[1]));
      expect(mine).toEqual(Array.from({ length: 50 }, (_, i) => i));
    }
  }, 60_000);
});

/**
 * Runs the TypeScript source directly with Node's type stripping (the tsconfig is
 * erasableSyntaxOnly for this): a resolve hook maps the NodeNext-style "./x.js" imports to
 * "./x.ts". This tests the code in the tree, not whatever dist/ happens to hold.
 */
const childScript = `${TS_SOURCE_HOOK}const { createFileStore } = await import(process.env.SRC);
const context = { configDir: process.env.STORE_DIR, env: {}, resolveSecret: async () => '', debug: () => {} };
const store = await createFileStore('default', { type: 'file', path: 'state/store.enc', keyFile: 'state/store.key' }, context);
const worker = process.env.WORKER;
process.stdout.write('ready\\n');
for await (const _ of process.stdin) break;
let conflicts = 0;
for (let i = 0; i < Number(process.env.COUNT); ) {
  const record = await store.read('counter');
  const secret = worker + '-' + i;
  const meta = { label: 'current', fingerprint: 'sha256:000000000000', createdAt: new Date().toISOString(), labelledAt: new Date().toISOString(), origin: 'generated' };
  try {
    await store.addVersion('counter', record?.revision, secret, meta);
    i++;
  } catch (error) {
    if (error?.kind !== 'conflict') throw error;
    conflicts++;
  }
}
console.log(JSON.stringify({ worker, conflicts }));
`;
