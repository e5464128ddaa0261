import type { DatabaseSync } from 'node:sqlite';
import * as v from 'valibot';
import type { KeyRecord, LifecycleState, VersionMeta } from '../../core/model.js';
import { lifecycleStateSchema, versionMetaEntries } from '../record-schema.js';
import { statement } from './database.js';
import { fileStoreError } from './errors.js';
import { keyIdOf, open, rowShare, seal, tagOf, type StoreKeys } from './sealing.js';

/**
 * One key as the database holds it: a key row (its sealed record) and one value row per
 * version that still has a value. Only ever held in memory decrypted.
 */
export interface StoredKey {
  name: string;
  /** The header's sequence at the key's last write: the compare-and-set token. */
  revision: number;
  /** Ids are never reused, even after versions are pruned by `update`. */
  lastVersionId: number;
  versions: StoredVersion[];
  state: LifecycleState;
}

/**
 * `value`: the GCM tag of the version's sealed value row, which pins that exact row (a value
 * row put back from before a delete, or from another version, does not match); null once the
 * version was disabled and its value erased.
 */
export type StoredVersion = VersionMeta & { value: string | null };

/** What every row operation needs: the keys, the store's id (in every row's additional data) and the file for messages. */
export interface RowContext {
  keys: StoreKeys;
  storeId: string;
  file: string;
  /** Key rows this process sealed (see remember); absent: every row is opened and checked. */
  sealed?: Map<string, SealedRow>;
}

/** A key row exactly as this process sealed it, and the JSON it sealed. */
interface SealedRow {
  revision: number;
  blob: Buffer;
  json: string;
}

/** Rows remembered per connection: the keys in flight, not the whole store (a run of 10,000 keys stays small). */
const rememberedRows = 512;

/**
 * Remembers a row this process just sealed. Reading back a row that is byte for byte the
 * one sealed here (same key id, revision and sealed bytes: ciphertext, tag and iv) can only
 * yield the JSON sealed here, which came from a checked record: decrypting and checking it
 * again proves nothing more. Any other bytes (an edit, an older row put back, another
 * process's write) are opened and checked in full.
 */
function remember(ctx: RowContext, idHex: string, row: SealedRow): void {
  const sealed = ctx.sealed;
  if (!sealed) return;
  sealed.delete(idHex);
  sealed.set(idHex, row);
  if (sealed.size > rememberedRows) sealed.delete(sealed.keys().next().value!);
}

function sealedHere(ctx: RowContext, row: KeyRow): SealedRow | undefined {
  const known = ctx.sealed?.get(Buffer.from(row.id).toString('hex'));
  return known && known.revision === row.revision && known.blob.equals(row.record) ? known : undefined;
}

const recordSchema = v.strictObject({
  name: v.pipe(v.string(), v.minLength(1)),
  lastVersionId: v.pipe(v.number(), v.integer(), v.minValue(0)),
  versions: v.array(v.looseObject({ ...versionMetaEntries, value: v.nullable(v.string()) })),
  state: lifecycleStateSchema,
});

interface KeyRow {
  id: Uint8Array;
  revision: number;
  record: Uint8Array;
}

function tampered(ctx: RowContext, what: string) {
  return fileStoreError('tampered', `store file ${ctx.file}: ${what}: it was modified, swapped or put back from an older copy`);
}

/** Authenticates and checks one key row; a row that fails is refused whole, never half-read. */
function openRow(ctx: RowContext, row: KeyRow): StoredKey {
  const mine = sealedHere(ctx, row);
  if (mine) return { ...(JSON.parse(mine.json) as Omit<StoredKey, 'revision'>), revision: row.revision };
  const id = Buffer.from(row.id);
  const plaintext = Number.isSafeInteger(row.revision) ? open(ctx.keys.record, row.record, ctx.storeId, 'record', id, row.revision) : undefined;
  if (plaintext === undefined) throw tampered(ctx, `a key row failed authentication (key id ${id.toString('hex').slice(0, 12)})`);
  let parsed;
  try {
    parsed = v.safeParse(recordSchema, JSON.parse(plaintext));
  } catch {
    parsed = undefined;
  }
  if (!parsed?.success) throw fileStoreError('tampered', `store file ${ctx.file}: a key row decrypted, but it is not a provkey key record`);
  const record = parsed.output as Omit<StoredKey, 'revision'>;
  if (!keyIdOf(ctx.keys, record.name).equals(id)) throw tampered(ctx, `the row of ${record.name} sits under another key's id`);
  const ids = record.versions.map((version) => Number(version.id));
  if (ids.some((n, i) => n > record.lastVersionId || (i > 0 && n <= ids[i - 1]!))) throw tampered(ctx, `the versions of ${record.name} are out of order`);
  return { ...record, revision: row.revision };
}

export function readKey(db: DatabaseSync, ctx: RowContext, name: string): StoredKey | undefined {
  const row = statement(db, 'SELECT id, revision, record FROM keys WHERE id = ?').get(keyIdOf(ctx.keys, name)) as KeyRow | undefined;
  return row && openRow(ctx, row);
}

/** Every key, in one query (status, list, the open-time check). */
export function readAllKeys(db: DatabaseSync, ctx: RowContext): StoredKey[] {
  return (statement(db, 'SELECT id, revision, record FROM keys').all() as unknown as KeyRow[]).map((row) => openRow(ctx, row));
}

/** The digest share of the key row as stored now (undefined: no row), for the header's digest update. */
export function storedShare(db: DatabaseSync, ctx: RowContext, name: string): Buffer | undefined {
  const id = keyIdOf(ctx.keys, name);
  const row = statement(db, 'SELECT revision, record FROM keys WHERE id = ?').get(id) as Omit<KeyRow, 'id'> | undefined;
  return row && rowShare(ctx.keys, ctx.storeId, id, row.revision, tagOf(row.record));
}

/**
 * Recomputes the digest and count of all key rows, from their ids, revisions and tags alone
 * (no decryption), and returns each row's share by key id (hex) for the writer's view.
 */
export function digestOfRows(db: DatabaseSync, ctx: RowContext): { digest: Buffer; count: number; shares: Map<string, Buffer> } {
  const digest = Buffer.alloc(32);
  const shares = new Map<string, Buffer>();
  for (const row of statement(db, 'SELECT id, revision, record FROM keys').iterate() as Iterable<KeyRow>) {
    const share = rowShare(ctx.keys, ctx.storeId, row.id, row.revision, tagOf(row.record));
    for (let i = 0; i < 32; i++) digest[i]! ^= share[i]!;
    shares.set(Buffer.from(row.id).toString('hex'), share);
  }
  return { digest, count: shares.size, shares };
}

export function keyIdHex(ctx: RowContext, name: string): string {
  return keyIdOf(ctx.keys, name).toString('hex');
}

/** Writes the key row; returns its new digest share. */
export function writeKey(db: DatabaseSync, ctx: RowContext, key: StoredKey): Buffer {
  const id = keyIdOf(ctx.keys, key.name);
  const { revision, ...record } = key;
  const json = JSON.stringify(record);
  const sealed = seal(ctx.keys.record, json, ctx.storeId, 'record', id, revision);
  statement(db, 'INSERT OR REPLACE INTO keys (id, revision, record) VALUES (?, ?, ?)').run(id, revision, sealed);
  remember(ctx, id.toString('hex'), { revision, blob: sealed, json });
  return rowShare(ctx.keys, ctx.storeId, id, revision, tagOf(sealed));
}

export function deleteKeyRows(db: DatabaseSync, ctx: RowContext, name: string): void {
  const id = keyIdOf(ctx.keys, name);
  statement(db, 'DELETE FROM keys WHERE id = ?').run(id);
  statement(db, 'DELETE FROM key_values WHERE key_id = ?').run(id);
}

/** Seals and stores a version's value; returns the tag its record keeps. */
export function writeValue(db: DatabaseSync, ctx: RowContext, name: string, versionId: string, secret: string): string {
  const id = keyIdOf(ctx.keys, name);
  const sealed = seal(ctx.keys.value, secret, ctx.storeId, 'value', id, Number(versionId));
  statement(db, 'INSERT OR REPLACE INTO key_values (key_id, version, value) VALUES (?, ?, ?)').run(id, Number(versionId), sealed);
  return tagOf(sealed);
}

export function readValue(db: DatabaseSync, ctx: RowContext, name: string, version: StoredVersion): string {
  const id = keyIdOf(ctx.keys, name);
  const row = statement(db, 'SELECT value FROM key_values WHERE key_id = ? AND version = ?').get(id, Number(version.id)) as { value: Uint8Array } | undefined;
  if (!row) throw tampered(ctx, `the value of ${name} version ${version.id} is missing although its record holds one`);
  if (tagOf(row.value) !== version.value) throw tampered(ctx, `the value of ${name} version ${version.id} is not the one its record pins`);
  const secret = open(ctx.keys.value, row.value, ctx.storeId, 'value', id, Number(version.id));
  if (secret === undefined) throw tampered(ctx, `the value of ${name} version ${version.id} failed authentication`);
  return secret;
}

export function eraseValue(db: DatabaseSync, ctx: RowContext, name: string, versionId: string): void {
  statement(db, 'DELETE FROM key_values WHERE key_id = ? AND version = ?').run(keyIdOf(ctx.keys, name), Number(versionId));
}

/** Removes the value rows of versions a record no longer lists (pruned by `update`). */
export function pruneValues(db: DatabaseSync, ctx: RowContext, key: StoredKey): void {
  const id = keyIdOf(ctx.keys, key.name);
  const kept = new Set(key.versions.map((version) => Number(version.id)));
  for (const row of statement(db, 'SELECT version FROM key_values WHERE key_id = ?').all(id) as { version: number }[]) {
    if (!kept.has(row.version)) statement(db, 'DELETE FROM key_values WHERE key_id = ? AND version = ?').run(id, row.version);
  }
}

/** What `read` hands out: a deep copy, without value tags. */
export function toKeyRecord(key: StoredKey): KeyRecord {
  return {
    key: key.name,
    versions: key.versions.map(({ value: _value, ...meta }) => structuredClone(meta)),
    state: structuredClone(key.state),
    revision: String(key.revision),
  };
}

/** Code-unit order, the same on every platform and locale. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
