import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { fileStoreError } from './errors.js';

/**
 * The on-disk form of a store file before the embedded database (provkey 0.1): a small JSON
 * envelope around one AES-256-GCM ciphertext. Only read now, to upgrade such a file
 * (file/upgrade.ts); the kdf and key check live on in the database's header.
 *
 *   {format, version, kdf, keyCheck, iv, tag, data}
 *
 * format, version and kdf are the GCM additional authenticated data, so a header cannot be
 * edited or swapped in from another file. keyCheck (an HMAC of a constant under the key) is
 * deliberately NOT in the AAD: it only exists to tell "wrong key" apart from "modified file",
 * and keeping it out lets us notice when it alone was changed (the data still authenticates).
 * Integrity never rests on it; it rests on the tag.
 */

export const storeFormat = 'provkey-file-store';
export const storeFormatVersion = 1;

export type Kdf = { type: 'keyfile' } | { type: 'scrypt'; salt: string; N: number; r: number; p: number };

export interface Envelope {
  format: typeof storeFormat;
  version: typeof storeFormatVersion;
  kdf: Kdf;
  keyCheck: string;
  iv: string;
  tag: string;
  data: string;
}

const ivBytes = 12;
const tagBytes = 16;
const keyCheckBytes = 16;

/** Validates the envelope's shape; anything unexpected means the file was damaged or is not ours. */
export function parseEnvelope(text: string, file: string): Envelope {
  const damaged = (what: string) => fileStoreError('tampered', `store file ${file} is damaged (${what}): it was modified or truncated`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw damaged('not valid JSON');
  }
  if (!isObject(value)) throw damaged('not a JSON object');
  if (value.format !== storeFormat) throw damaged('not a provkey store file');
  if (value.version !== storeFormatVersion) {
    if (Number.isSafeInteger(value.version) && (value.version as number) > storeFormatVersion) {
      throw fileStoreError('invalid', `store file ${file} has format version ${String(value.version)}, written by a newer provkey: upgrade provkey`);
    }
    throw damaged('bad format version');
  }
  const kdf = parseKdf(value.kdf);
  if (!kdf) throw damaged('bad kdf');
  for (const [field, length] of [['keyCheck', keyCheckBytes], ['iv', ivBytes], ['tag', tagBytes], ['data', undefined]] as const) {
    if (!decodeBase64(value[field], length)) throw damaged(`bad ${field}`);
  }
  return { format: storeFormat, version: storeFormatVersion, kdf, keyCheck: value.keyCheck as string, iv: value.iv as string, tag: value.tag as string, data: value.data as string };
}

export function parseKdf(value: unknown): Kdf | undefined {
  if (!isObject(value)) return undefined;
  if (value.type === 'keyfile' && Object.keys(value).length === 1) return { type: 'keyfile' };
  if (value.type !== 'scrypt' || !decodeBase64(value.salt, 16)) return undefined;
  const { N, r, p } = value;
  // Bounds keep a doctored header from making us allocate gigabytes (memory is 128·N·r bytes).
  const isPowerOfTwo = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 2 ** 14 && (n as number) <= 2 ** 17 && ((n as number) & ((n as number) - 1)) === 0;
  const inRange = (n: unknown, max: number) => Number.isSafeInteger(n) && (n as number) >= 1 && (n as number) <= max;
  if (!isPowerOfTwo(N) || !inRange(r, 16) || !inRange(p, 4)) return undefined;
  return { type: 'scrypt', salt: value.salt as string, N: N as number, r: r as number, p: p as number };
}

/** Encrypts a whole plaintext under a fresh random IV and returns the file's text. */
export function sealEnvelope(plaintext: string, key: Buffer, kdf: Kdf): string {
  const iv = randomBytes(ivBytes);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: tagBytes });
  cipher.setAAD(additionalData(kdf));
  const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const envelope: Envelope = {
    format: storeFormat,
    version: storeFormatVersion,
    kdf,
    keyCheck: keyCheck(key).toString('base64'),
    iv: iv.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
    data: data.toString('base64'),
  };
  return `${JSON.stringify(envelope)}\n`;
}

/**
 * Decrypts and authenticates the whole file before anything is returned.
 * `keySource` names where the key came from, for the wrong-key message ("key file /x", "passphrase from $Y").
 */
export function openEnvelope(envelope: Envelope, key: Buffer, file: string, keySource: string): string {
  const keyMatches = timingSafeEqual(keyCheck(key), Buffer.from(envelope.keyCheck, 'base64'));
  let plaintext: string | undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(envelope.iv, 'base64'), { authTagLength: tagBytes });
    decipher.setAAD(additionalData(envelope.kdf));
    decipher.setAuthTag(Buffer.from(envelope.tag, 'base64'));
    plaintext = Buffer.concat([decipher.update(Buffer.from(envelope.data, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    plaintext = undefined;
  }
  if (plaintext === undefined && !keyMatches) {
    throw fileStoreError('auth_failed', `cannot open store file ${file}: wrong key file or passphrase (${keySource})`);
  }
  // Either the ciphertext failed under the right key, or it authenticated while the key check was edited.
  if (plaintext === undefined || !keyMatches) {
    throw fileStoreError('tampered', `store file ${file} failed authentication: it was modified or truncated`);
  }
  return plaintext;
}

export function keyCheck(key: Buffer): Buffer {
  return createHmac('sha256', key).update('provkey-key-check').digest().subarray(0, keyCheckBytes);
}

/** A fixed field order, so the AAD does not depend on how a JSON writer ordered the header's keys. */
function additionalData(kdf: Kdf): Buffer {
  const kdfFields = kdf.type === 'keyfile' ? [kdf.type] : [kdf.type, kdf.salt, kdf.N, kdf.r, kdf.p];
  return Buffer.from(JSON.stringify([storeFormat, storeFormatVersion, ...kdfFields]), 'utf8');
}

/**
 * Strict base64: Buffer.from silently skips bad characters (and accepts base64url), which would
 * hide a damaged field. Requiring the canonical re-encoding to match rejects all of that.
 */
export function decodeBase64(value: unknown, length?: number): Buffer | undefined {
  if (typeof value !== 'string') return undefined;
  const bytes = Buffer.from(value, 'base64');
  if (bytes.toString('base64') !== value) return undefined;
  if (length !== undefined && bytes.length !== length) return undefined;
  return bytes;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
