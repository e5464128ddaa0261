import type { DatabaseSync } from 'node:sqlite';
import * as v from 'valibot';
import { parseKdf, type Kdf } from './envelope.js';
import { statement } from './database.js';
import { fileStoreError } from './errors.js';
import { databaseFormat, headerMac, macMatches, type StoreKeys } from './sealing.js';

/**
 * The database's one header row: what a whole-store check needs, authenticated by an HMAC.
 *
 * - generation: bumped by every write transaction and announced in the audit log before the
 *   commit (audit/generation.ts): a put-back older copy of the whole file is told apart from
 *   the newest by it.
 * - sequence: bumped by every write; a key's revision is the sequence of its last write, so a
 *   key deleted and added again never gets back a revision an old reader still holds.
 * - keyCount and digest: the set of key rows (see sealing.ts rowShare), so a removed, added or
 *   older row put back is found when the store is opened.
 * - storeId: random, made when the store is created; every row's additional data names it, so
 *   rows cannot be moved between two stores sealed with the same key.
 */
export interface Header {
  kdf: Kdf;
  keyCheck: Buffer;
  storeId: string;
  generation: number;
  sequence: number;
  keyCount: number;
  digest: Buffer;
}

const count = v.pipe(v.number(), v.integer(), v.minValue(0));
const bodySchema = v.strictObject({
  format: v.literal(databaseFormat),
  storeId: v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/)),
  generation: count,
  sequence: count,
  keyCount: count,
  digest: v.pipe(v.string(), v.regex(/^[A-Za-z0-9+/]{43}=$/)),
});

interface HeaderRow {
  kdf: string;
  key_check: Uint8Array;
  body: string;
  mac: Uint8Array;
}

/** The raw header, before the key is known: the kdf says how to make the key, the key check whether it is right. */
export interface RawHeader {
  kdf: Kdf;
  keyCheck: Buffer;
  row: HeaderRow;
}

export function readRawHeader(db: DatabaseSync, file: string): RawHeader {
  const damaged = (what: string) => fileStoreError('tampered', `store file ${file} is damaged (${what}): it was modified or truncated`);
  const rows = statement(db, 'SELECT kdf, key_check, body, mac FROM header').all() as unknown as HeaderRow[];
  if (rows.length !== 1) throw damaged(rows.length === 0 ? 'no header' : 'more than one header');
  const row = rows[0]!;
  if (typeof row.kdf !== 'string' || !(row.key_check instanceof Uint8Array) || typeof row.body !== 'string' || !(row.mac instanceof Uint8Array)) throw damaged('header columns');
  let kdf: Kdf | undefined;
  try {
    kdf = parseKdf(JSON.parse(row.kdf));
  } catch {
    kdf = undefined;
  }
  if (!kdf) throw damaged('bad kdf');
  return { kdf, keyCheck: Buffer.from(row.key_check), row };
}

/** Authenticates the header under the store's keys; a failure with the right key is tampering. */
export function verifyHeader(raw: RawHeader, keys: StoreKeys, file: string): Header {
  const tampered = () => fileStoreError('tampered', `store file ${file}: its header failed authentication (edited, or copied from another store)`);
  if (!macMatches(headerMac(keys, raw.row.kdf, raw.row.body), raw.row.mac)) throw tampered();
  let body: unknown;
  try {
    body = JSON.parse(raw.row.body);
  } catch {
    throw tampered();
  }
  const parsed = v.safeParse(bodySchema, body);
  if (!parsed.success) throw fileStoreError('tampered', `store file ${file}: its header is not a provkey store header`);
  const { storeId, generation, sequence, keyCount, digest } = parsed.output;
  return { kdf: raw.kdf, keyCheck: raw.keyCheck, storeId, generation, sequence, keyCount, digest: Buffer.from(digest, 'base64') };
}

/** Writes (inserts or replaces) the header row, sealed with a fresh MAC. */
export function writeHeader(db: DatabaseSync, header: Header, keys: StoreKeys): void {
  const kdf = JSON.stringify(header.kdf);
  const body = JSON.stringify({
    format: databaseFormat,
    storeId: header.storeId,
    generation: header.generation,
    sequence: header.sequence,
    keyCount: header.keyCount,
    digest: header.digest.toString('base64'),
  });
  statement(db, 'INSERT OR REPLACE INTO header (id, kdf, key_check, body, mac) VALUES (1, ?, ?, ?, ?)').run(kdf, header.keyCheck, body, headerMac(keys, kdf, body));
}
