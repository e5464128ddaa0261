import { pbkdf2Sync, timingSafeEqual } from 'node:crypto';

/**
 * The PBKDF2 userPassword schemes, so `identify` can read the answer from the stored value on
 * 389-DS / RHDS / FreeIPA with their DEFAULT scheme instead of spending a failed bind. Two
 * encodings exist (389-ds-base 2.x source, seen on this machine's 2.3 server):
 *
 * - `{PBKDF2-SHA512}` (the default since 389-DS 2.0), `{PBKDF2-SHA256}`, `{PBKDF2-SHA1}`,
 *   `{PBKDF2}` (SHA-1): the pwdchan plugin's, and OpenLDAP's pw-pbkdf2 module's,
 *   `ITERATIONS$SALT$HASH`, salt and hash base64 (389-DS writes standard base64 with padding,
 *   24-byte salt; OpenLDAP/passlib write "ab64": `.` for `+`, no padding). The derived key is
 *   as long as the stored hash.
 * - `{PBKDF2_SHA256}` (the older C plugin, the default of 389-DS 1.3.x–1.4.x): base64 of
 *   324 bytes: iterations (4 bytes, big-endian), a 64-byte salt, then 256 bytes of
 *   PBKDF2-HMAC-SHA256 output.
 *
 * The password is hashed as its UTF-8 bytes, as both plugins do.
 */

const DOLLAR_SCHEMES: Record<string, string> = { PBKDF2: 'sha1', 'PBKDF2-SHA1': 'sha1', 'PBKDF2-SHA256': 'sha256', 'PBKDF2-SHA512': 'sha512' };
const DIGEST_BYTES: Record<string, number> = { sha1: 20, sha256: 32, sha512: 64 };
const LEGACY_SALT_BYTES = 64;
const LEGACY_HASH_BYTES = 256;
/** Digest-block computations provkey will do for one stored value (10M ≈ 1 s here): a larger cost is "cannot tell", never a hang. */
const MAX_WORK = 10_000_000;
/** Shorter than this is not a hash 389-DS or OpenLDAP writes: "cannot tell". */
const MIN_HASH_BYTES = 16;

/** true / false when `scheme` is a PBKDF2 scheme and the value is well formed; undefined otherwise. */
export function pbkdf2Matches(candidate: string, scheme: string, encoded: string): boolean | undefined {
  if (scheme === 'PBKDF2_SHA256') return legacyMatches(candidate, encoded);
  const digest = DOLLAR_SCHEMES[scheme];
  if (!digest) return undefined;
  const parts = /^(\d{1,9})\$([A-Za-z0-9+/.]+={0,2})\$([A-Za-z0-9+/.]+={0,2})$/.exec(encoded.trim());
  if (!parts) return undefined;
  const iterations = Number(parts[1]);
  const salt = decodeAb64(parts[2]!);
  const hash = decodeAb64(parts[3]!);
  if (!salt || !hash || salt.length === 0 || hash.length < MIN_HASH_BYTES) return undefined;
  return derive(candidate, salt, iterations, hash, digest);
}

function legacyMatches(candidate: string, encoded: string): boolean | undefined {
  const raw = strictBase64(encoded.trim());
  if (!raw || raw.length !== 4 + LEGACY_SALT_BYTES + LEGACY_HASH_BYTES) return undefined;
  const iterations = raw.readUInt32BE(0);
  const salt = raw.subarray(4, 4 + LEGACY_SALT_BYTES);
  const hash = raw.subarray(4 + LEGACY_SALT_BYTES);
  return derive(candidate, salt, iterations, hash, 'sha256');
}

function derive(candidate: string, salt: Buffer, iterations: number, hash: Buffer, digest: string): boolean | undefined {
  const blocks = Math.ceil(hash.length / DIGEST_BYTES[digest]!);
  if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations * blocks > MAX_WORK) return undefined;
  const computed = pbkdf2Sync(Buffer.from(candidate, 'utf8'), salt, iterations, hash.length, digest);
  return timingSafeEqual(computed, hash);
}

/** Standard or "adapted" base64 (`.` for `+`, padding optional), as the pwdchan plugin accepts. */
function decodeAb64(text: string): Buffer | undefined {
  const standard = text.replace(/\./g, '+').replace(/=+$/, '');
  if (standard.length % 4 === 1) return undefined;
  return strictBase64(standard + '='.repeat((4 - (standard.length % 4)) % 4));
}

/** Node's decoder skips what is not base64: re-encoding tells a well-formed value. */
function strictBase64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  const raw = Buffer.from(text, 'base64');
  return raw.toString('base64') === text ? raw : undefined;
}
