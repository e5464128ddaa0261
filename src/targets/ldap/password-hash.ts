import { createHash, timingSafeEqual } from 'node:crypto';
import { pbkdf2Matches } from './pbkdf2-hash.js';

/**
 * Checks a candidate password against the userPassword values an admin can read (RFC 2307
 * `{SCHEME}base64` as OpenLDAP and 389-DS write them, and the PBKDF2 schemes, 389-DS's default:
 * pbkdf2-hash.ts), so `identify` can tell which version the directory holds without a bind that
 * might fail. A scheme provkey cannot compute here ({CRYPT}, {ARGON2}, a malformed value) is
 * "cannot tell", never a mismatch.
 */

const DIGESTS: Record<string, { algorithm: string; length: number; salted: boolean }> = {
  SHA: { algorithm: 'sha1', length: 20, salted: false },
  SSHA: { algorithm: 'sha1', length: 20, salted: true },
  SHA256: { algorithm: 'sha256', length: 32, salted: false },
  SSHA256: { algorithm: 'sha256', length: 32, salted: true },
  SHA384: { algorithm: 'sha384', length: 48, salted: false },
  SSHA384: { algorithm: 'sha384', length: 48, salted: true },
  SHA512: { algorithm: 'sha512', length: 64, salted: false },
  SSHA512: { algorithm: 'sha512', length: 64, salted: true },
  MD5: { algorithm: 'md5', length: 16, salted: false },
  SMD5: { algorithm: 'md5', length: 16, salted: true },
};

/** true / false when the stored value can be checked; undefined for a scheme provkey cannot compute. */
export function storedValueMatches(candidate: string, stored: string): boolean | undefined {
  const scheme = /^\{([A-Za-z0-9._-]+)\}(.*)$/s.exec(stored);
  if (!scheme) return equal(Buffer.from(candidate, 'utf8'), Buffer.from(stored, 'utf8'));
  const name = scheme[1]!.toUpperCase();
  const rest = scheme[2]!;
  if (name === 'CLEARTEXT') return equal(Buffer.from(candidate, 'utf8'), Buffer.from(rest, 'utf8'));
  const digest = DIGESTS[name];
  if (!digest) return pbkdf2Matches(candidate, name, rest);
  const raw = Buffer.from(rest, 'base64');
  if (raw.length < digest.length || (!digest.salted && raw.length !== digest.length)) return undefined;
  const hash = raw.subarray(0, digest.length);
  const salt = raw.subarray(digest.length);
  const computed = createHash(digest.algorithm).update(candidate, 'utf8').update(salt).digest();
  return equal(computed, hash);
}

/**
 * Over every userPassword value: true when one matches; false when every value was checked and
 * none matches; undefined when some value could not be checked (or there are none).
 */
export function storedPasswordMatches(candidate: string, stored: readonly string[]): boolean | undefined {
  if (stored.length === 0) return undefined;
  let unknown = false;
  for (const value of stored) {
    const match = storedValueMatches(candidate, value);
    if (match === true) return true;
    if (match === undefined) unknown = true;
  }
  return unknown ? undefined : false;
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
