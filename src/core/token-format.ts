import { crc32 } from 'node:zlib';

/**
 * Identifiable tokens, in the spirit of GitHub's format: `<prefix>_<base62 random><6-char checksum>`.
 * The checksum (CRC32 of everything before it, base62, 6 chars) lets a secret scanner tell a
 * real provkey token from random text offline, with no call to any server.
 */
export const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const CHECKSUM_LENGTH = 6;

export function encodeTokenChecksum(body: string): string {
  let value = crc32(body);
  let out = '';
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = BASE62[value % 62] + out;
    value = Math.floor(value / 62);
  }
  return out;
}

export type TokenCheck =
  | { valid: true; prefix: string }
  | { valid: false; reason: string };

const TOKEN_SHAPE = /^([A-Za-z][A-Za-z0-9]{0,15})_([0-9A-Za-z]+)$/;

export function checkToken(candidate: string): TokenCheck {
  const match = TOKEN_SHAPE.exec(candidate.trim());
  if (!match) return { valid: false, reason: 'not of the form <prefix>_<base62>' };
  const rest = match[2]!;
  if (rest.length <= CHECKSUM_LENGTH) return { valid: false, reason: 'too short' };
  const body = `${match[1]}_${rest.slice(0, -CHECKSUM_LENGTH)}`;
  if (encodeTokenChecksum(body) !== rest.slice(-CHECKSUM_LENGTH)) return { valid: false, reason: 'checksum mismatch' };
  return { valid: true, prefix: match[1]! };
}
