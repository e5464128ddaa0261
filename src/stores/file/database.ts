import { open as openFile, rm } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { fileStoreError } from './errors.js';

/**
 * The SQLite side of the embedded store (node:sqlite, built into Node: no native build).
 *
 * - WAL journal: readers never wait for a writer and a writer never waits for readers;
 *   a crash leaves the last committed transaction (the journal is replayed or ignored on the
 *   next open), which is what replaced the hand-written lock and atomic rewrite.
 * - synchronous=FULL: every commit fsyncs the WAL. NORMAL alone would be safe against a crashed
 *   process but may lose the last commits on power loss, and a lost "pending" record after
 *   the target already took the new key is exactly what the rotation protocol cannot afford.
 *   The store's writer connection commits with NORMAL only when it can fsync the WAL itself
 *   (off the main thread) before any caller hears that its write is done, and before the
 *   next generation is announced (see syncAfterCommit in ../file.ts): the same durability.
 * - secure_delete: an erased value (disableVersion) is overwritten, not left in a free page.
 * - Writes are BEGIN IMMEDIATE: the write lock is taken before the first read, so a
 *   compare-and-set reads and writes under one lock, across processes.
 */

export const applicationId = 0x706b7632; // "pkv2": marks the file as a provkey store for `file(1)` and for us
export const schemaVersion = 2;

const schema = `
CREATE TABLE header (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  kdf TEXT NOT NULL,        -- how the store key is made (key file, or scrypt and its salt); read before the key exists
  key_check BLOB NOT NULL,  -- tells a wrong key apart from a tampered header; integrity never rests on it
  body TEXT NOT NULL,       -- JSON: format, store id, generation, sequence, key count, row digest
  mac BLOB NOT NULL         -- HMAC over kdf and body
);
CREATE TABLE keys (
  id BLOB PRIMARY KEY,      -- HMAC of the key's name
  revision INTEGER NOT NULL,
  record BLOB NOT NULL      -- sealed JSON: name, last version id, versions' metadata, lifecycle state
) WITHOUT ROWID;
CREATE TABLE key_values (
  key_id BLOB NOT NULL,
  version INTEGER NOT NULL,
  value BLOB NOT NULL,      -- sealed secret value; the row is deleted when the version is disabled
  PRIMARY KEY (key_id, version)
) WITHOUT ROWID;
`;

/**
 * node:sqlite, loaded on first use. Node 22 (the oldest provkey supports) prints an
 * ExperimentalWarning when it loads: noise on every run's stderr, so that one warning is
 * dropped. getBuiltinModule is synchronous and leaves the single-executable bundle alone.
 */
let sqlite: typeof import('node:sqlite') | undefined;
function sqliteModule(): typeof import('node:sqlite') {
  if (sqlite) return sqlite;
  const emit = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    if (String(warning instanceof Error ? warning.message : warning).startsWith('SQLite is an experimental feature')) return;
    (emit as (...args: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    sqlite = process.getBuiltinModule('node:sqlite');
  } finally {
    process.emitWarning = emit;
  }
  // Node 22.12 (provkey's oldest) has node:sqlite behind a flag; 22.13 and later without one.
  if (!sqlite) throw fileStoreError('invalid', `the embedded store needs node:sqlite: Node.js ${process.versions.node} has it only with NODE_OPTIONS=--experimental-sqlite (Node.js 22.13 or newer needs nothing)`);
  return sqlite;
}

/** The first bytes of every SQLite database file. */
export const sqliteMagic = Buffer.from('SQLite format 3\0', 'latin1');

/** Opens an existing database file; `busyMs` bounds how long one statement waits for a checkpoint or recovery. */
export function openConnection(file: string, busyMs = 2000): DatabaseSync {
  const db = new (sqliteModule().DatabaseSync)(file);
  try {
    db.exec(`PRAGMA busy_timeout = ${busyMs}`);
    db.exec('PRAGMA journal_mode = WAL');
    db.exec('PRAGMA synchronous = FULL');
    db.exec('PRAGMA secure_delete = ON');
    db.exec('PRAGMA trusted_schema = OFF');
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * Writes a complete new database into `file`, which must not exist (created 0600 here, so
 * SQLite's WAL and shared-memory files get the same private mode). `fill` runs in one
 * transaction. The connection is closed at the end, which checkpoints the WAL into the file:
 * the result is a single self-contained file, ready to be linked or renamed into place.
 */
export async function writeNewDatabase(file: string, fill: (db: DatabaseSync) => void): Promise<void> {
  await (await openFile(file, 'wx', 0o600)).close();
  let db: DatabaseSync | undefined;
  try {
    db = openConnection(file);
    db.exec(`PRAGMA application_id = ${applicationId}`);
    db.exec(`PRAGMA user_version = ${schemaVersion}`);
    db.exec('BEGIN IMMEDIATE');
    db.exec(schema);
    fill(db);
    db.exec('COMMIT');
    db.close();
    db = undefined;
  } catch (error) {
    if (db?.isOpen) db.close();
    await rm(file, { force: true });
    await removeSidecars(file);
    throw error;
  }
}

export async function removeSidecars(file: string): Promise<void> {
  await Promise.all(['-wal', '-shm', '-journal'].map((suffix) => rm(`${file}${suffix}`, { force: true })));
}

/** Checks the file is a provkey database of a schema this code knows; the message names what is wrong. */
export function checkSchema(db: DatabaseSync, file: string): void {
  const id = (db.prepare('PRAGMA application_id').get() as { application_id: number }).application_id;
  const version = (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
  if (id !== applicationId) throw fileStoreError('tampered', `store file ${file} is a database, but not a provkey store`);
  if (version > schemaVersion) throw fileStoreError('invalid', `store file ${file} has schema version ${version}, written by a newer provkey: upgrade provkey`);
  if (version !== schemaVersion) throw fileStoreError('tampered', `store file ${file} has an unknown schema version ${version}`);
}

export function isBusy(error: unknown): boolean {
  const code = (error as { errcode?: number } | undefined)?.errcode;
  // SQLITE_BUSY (5) and its extended codes (e.g. 261 BUSY_RECOVERY, 517 BUSY_SNAPSHOT).
  return typeof code === 'number' && (code & 0xff) === 5;
}

/**
 * BEGIN IMMEDIATE, retried without blocking the event loop while another process writes:
 * a busy_timeout alone would stall every other key's network I/O in this process.
 */
export async function beginImmediate(db: DatabaseSync, timeoutMs: number, file: string): Promise<void> {
  const started = Date.now();
  for (let wait = 2; ; wait = Math.min(wait * 2, 50)) {
    try {
      db.exec('BEGIN IMMEDIATE');
      return;
    } catch (error) {
      if (!isBusy(error)) throw error;
      const waited = Date.now() - started;
      if (waited >= timeoutMs) {
        throw fileStoreError('locked', `store file ${file} is being written by another process; gave up after ${(waited / 1000).toFixed(1)}s`);
      }
      await delay(Math.min(wait, Math.max(1, timeoutMs - waited)));
    }
  }
}

const statements = new WeakMap<DatabaseSync, Map<string, StatementSync>>();

/**
 * A prepared statement of `db`, prepared once per connection and SQL text: every row operation
 * would otherwise compile its SQL again (several per write). node:sqlite resets a statement on
 * each run, get, all or iterate, so one statement serves every call that finishes before the next.
 */
export function statement(db: DatabaseSync, sql: string): StatementSync {
  let byText = statements.get(db);
  if (!byText) statements.set(db, (byText = new Map()));
  let prepared = byText.get(sql);
  if (!prepared) byText.set(sql, (prepared = db.prepare(sql)));
  return prepared;
}
