import { createCipheriv, createDecipheriv, createHmac, createSecretKey, hkdfSync, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';

/**
 * The embedded database's cryptography: every row is sealed with a key derived (HKDF-SHA256)
 * from the store key, one key per purpose, so no two kinds of row can stand in for each other.
 *
 * - key record (name, version metadata, lifecycle state): AES-256-GCM, additional data
 *   [format, store id, "record", key id, revision];
 * - version value: AES-256-GCM, additional data [format, store id, "value", key id, version id];
 * - key id: HMAC of the key's name, so names stay out of the file yet a key is one indexed lookup;
 * - header (generation, sequence, row digest) and the row digest: HMAC.
 *
 * A sealed blob is iv (12) | tag (16) | ciphertext. The GCM tag is the row's MAC: it covers
 * the ciphertext and the additional data, so an edited row, a row moved to another key, or
 * a value moved to another version fails authentication.
 */

export const databaseFormat = 'provkey-embedded-store';

const ivBytes = 12;
const tagBytes = 16;

export interface StoreKeys {
  /** The store key itself: the audit chain key is derived from it (audit/chain.ts). */
  master: Buffer;
  record: KeyObject;
  value: KeyObject;
  keyId: KeyObject;
  mac: KeyObject;
  /** Key ids already computed in this process, by name (see keyIdOf). */
  ids: Map<string, Buffer>;
}

/** KeyObjects, made once: every row operation would otherwise import its key again. */
export function deriveStoreKeys(master: Buffer): StoreKeys {
  const derive = (purpose: string) => createSecretKey(Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), `${databaseFormat} v2 ${purpose}`, 32)));
  return { master, record: derive('record'), value: derive('value'), keyId: derive('key id'), mac: derive('mac'), ids: new Map() };
}

/**
 * A key's id; a pure function of the store key and the name, so computed once per name and
 * process (a write looks it up several times). Callers only read the buffer.
 */
export function keyIdOf(keys: StoreKeys, name: string): Buffer {
  let id = keys.ids.get(name);
  if (!id) {
    id = createHmac('sha256', keys.keyId).update(name, 'utf8').digest();
    keys.ids.set(name, id);
  }
  return id;
}

/** A fixed JSON array, so the additional data never depends on how a writer ordered fields. */
function aad(storeId: string, kind: 'record' | 'value', keyId: Buffer, n: number): Buffer {
  return Buffer.from(JSON.stringify([databaseFormat, storeId, kind, keyId.toString('hex'), n]), 'utf8');
}

export function seal(key: KeyObject, plaintext: string, storeId: string, kind: 'record' | 'value', keyId: Buffer, n: number): Buffer {
  const iv = randomBytes(ivBytes);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: tagBytes });
  cipher.setAAD(aad(storeId, kind, keyId, n));
  const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), data]);
}

/** The plaintext, or undefined when the blob does not authenticate under this key and additional data. */
export function open(key: KeyObject, blob: Uint8Array, storeId: string, kind: 'record' | 'value', keyId: Buffer, n: number): string | undefined {
  if (blob.length < ivBytes + tagBytes) return undefined;
  const bytes = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, ivBytes), { authTagLength: tagBytes });
    decipher.setAAD(aad(storeId, kind, keyId, n));
    decipher.setAuthTag(bytes.subarray(ivBytes, ivBytes + tagBytes));
    return Buffer.concat([decipher.update(bytes.subarray(ivBytes + tagBytes)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}

/** The tag of a sealed blob: what a key record stores to pin its value rows. */
export function tagOf(blob: Uint8Array): string {
  return Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength).subarray(ivBytes, ivBytes + tagBytes).toString('base64');
}

export function headerMac(keys: StoreKeys, kdf: string, body: string): Buffer {
  return createHmac('sha256', keys.mac).update(`header\n${kdf}\n${body}`, 'utf8').digest();
}

export function macMatches(expected: Buffer, actual: Uint8Array): boolean {
  return actual.length === expected.length && timingSafeEqual(expected, actual);
}

/**
 * One key row's share of the header's row digest. The digest is the XOR of every key row's
 * share (an incremental MAC over the set of rows: a write updates it in O(1)), so a removed
 * row, an added one, or an older authentic row put back (a row replay: a revoked value's
 * record returning) no longer matches the header's digest.
 */
export function rowShare(keys: StoreKeys, storeId: string, keyId: Uint8Array, revision: number, recordTag: string): Buffer {
  return createHmac('sha256', keys.mac).update(JSON.stringify(['row', storeId, Buffer.from(keyId).toString('hex'), revision, recordTag]), 'utf8').digest();
}

export function xorInto(target: Buffer, share: Buffer): void {
  for (let i = 0; i < target.length; i++) target[i]! ^= share[i]!;
}
