import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICIES, checkImportedValue, checkPolicy, entropyBits, estimatedBits, generateSecret, type GenerationPolicy } from '../../src/core/keygen.js';
import { checkToken, encodeTokenChecksum } from '../../src/core/token-format.js';
import { fingerprint } from '../../src/core/fingerprint.js';

describe('token format', () => {
  it('is <prefix>_<43 base62><6-char checksum> with 256 bits and a valid checksum', () => {
    const token = generateSecret({ ...DEFAULT_POLICIES.token, prefix: 'acme' });
    expect(token).toMatch(/^acme_[0-9A-Za-z]{49}$/);
    expect(entropyBits(DEFAULT_POLICIES.token)).toBeGreaterThanOrEqual(256);
    expect(checkToken(token)).toEqual({ valid: true, prefix: 'acme' });
  });

  it('detects a single changed character, a truncated token and a foreign string', () => {
    const token = generateSecret(DEFAULT_POLICIES.token);
    const i = 10;
    const flipped = token.slice(0, i) + (token[i] === 'a' ? 'b' : 'a') + token.slice(i + 1);
    expect(checkToken(flipped)).toEqual({ valid: false, reason: 'checksum mismatch' });
    expect(checkToken(token.slice(0, -1)).valid).toBe(false);
    expect(checkToken('ghp_notours').valid).toBe(false);
    expect(checkToken('no-underscore').valid).toBe(false);
  });

  it('checksum is stable for a given body (scanners can rely on it)', () => {
    expect(encodeTokenChecksum('pk_abc')).toBe(encodeTokenChecksum('pk_abc'));
    expect(encodeTokenChecksum('pk_abc')).toHaveLength(6);
    expect(encodeTokenChecksum('pk_abc')).not.toBe(encodeTokenChecksum('pk_abd'));
  });

  it('never repeats across many draws', () => {
    const seen = new Set(Array.from({ length: 2000 }, () => generateSecret(DEFAULT_POLICIES.token)));
    expect(seen.size).toBe(2000);
  });
});

describe('password policy', () => {
  const policy: GenerationPolicy = { type: 'password', length: 28, lower: 2, upper: 2, digits: 2, symbols: 2, symbolSet: '-_!', exclude: 'lI1O0' };

  it('meets every class minimum and never uses an excluded character', () => {
    for (let i = 0; i < 500; i++) {
      const pw = generateSecret(policy);
      expect(pw).toHaveLength(28);
      expect(pw.match(/[a-z]/g)!.length).toBeGreaterThanOrEqual(2);
      expect(pw.match(/[A-Z]/g)!.length).toBeGreaterThanOrEqual(2);
      expect(pw.match(/[0-9]/g)!.length).toBeGreaterThanOrEqual(2);
      expect(pw.match(/[-_!]/g)!.length).toBeGreaterThanOrEqual(2);
      expect(pw).not.toMatch(/[lI1O0]/);
    }
  });

  it('a forbidden class (-1) never appears', () => {
    const pw = generateSecret({ ...policy, symbols: -1 });
    expect(pw).toMatch(/^[A-Za-z0-9]+$/);
  });

  it('uses every position uniformly enough (no fixed class positions)', () => {
    const firstIsDigit = Array.from({ length: 3000 }, () => /[0-9]/.test(generateSecret(policy)[0]!)).filter(Boolean).length;
    // 8 of 59 characters are digits plus 2 required of 28 positions: about 14%, never 0% or 100%.
    expect(firstIsDigit).toBeGreaterThan(150);
    expect(firstIsDigit).toBeLessThan(900);
  });

  it('refuses impossible and weak policies, naming the field', () => {
    expect(() => checkPolicy({ ...policy, length: 6 }, 'keys.x.format')).toThrow(/keys\.x\.format\.length: 6 is shorter than the 8 required/);
    expect(() => checkPolicy({ ...policy, exclude: '0123456789' }, 'f')).toThrow(/f\.digits: requires 2/);
    expect(() => checkPolicy({ ...policy, length: 12 }, 'f')).toThrow(/under the 128-bit minimum/);
    expect(() => checkPolicy({ ...policy, length: 12, allowWeak: true }, 'f')).not.toThrow();
  });
});

describe('entropy', () => {
  it('reports honest lower bounds', () => {
    expect(entropyBits({ type: 'hex', bytes: 16 })).toBe(128);
    expect(entropyBits({ type: 'base64url', bytes: 32 })).toBe(256);
    expect(() => checkPolicy({ type: 'hex', bytes: 15 })).toThrow(/120 bits/);
  });
  it('base64url and hex have the asked length', () => {
    expect(generateSecret({ type: 'hex', bytes: 32 })).toMatch(/^[0-9a-f]{64}$/);
    expect(generateSecret({ type: 'base64url', bytes: 32 })).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});

describe('fingerprint', () => {
  it('is a short SHA-256 prefix', () => {
    expect(fingerprint('abc')).toBe('sha256:ba7816bf8f01');
  });
});

describe('input bounds (issue 7, item 12)', () => {
  it.each([
    [{ ...DEFAULT_POLICIES.token, randomLength: 1e20 }, /keys\.x\.format\.randomLength: must be a whole number from 8 to 256/],
    [{ ...DEFAULT_POLICIES.password, length: 100_000 }, /keys\.x\.format\.length: must be a whole number from 8 to 256/],
    [{ ...DEFAULT_POLICIES.hex, bytes: 4096 }, /keys\.x\.format\.bytes: must be a whole number from 8 to 1024/],
    [{ ...DEFAULT_POLICIES.base64url, bytes: 2.5 }, /keys\.x\.format\.bytes: must be a whole number/],
  ] as [GenerationPolicy, RegExp][])('a policy out of bounds is refused before any value is drawn: %j', (policy, message) => {
    expect(() => checkPolicy(policy, 'keys.x.format')).toThrow(message);
  });

  const token = generateSecret(DEFAULT_POLICIES.token);
  it.each([
    ['a 3-character value', 'abc', false, /at most \d+ bits of entropy/],
    ['a long value of two characters', 'ab'.repeat(40), false, /at most \d+ bits/],
    ['a NUL inside', `${token.slice(0, 20)}\0${token.slice(20)}`, false, /control character/],
    ['leading white space', ` ${token}`, false, /white space/],
    ['more than 4 KiB', 'x'.repeat(5000), false, /longer than 4096/],
    ['--apply: a random value that is not a token', 'Zq8'.repeat(2) + randomHex(40), true, /not a provkey token/],
    ['--apply: a token with another prefix', generateSecret({ ...DEFAULT_POLICIES.token, prefix: 'other' }), true, /another prefix than pk/],
  ])('an imported value is refused: %s', (_name, value, apply, message) => {
    expect(() => checkImportedValue(value, DEFAULT_POLICIES.token, { apply, field: 'value for app' })).toThrow(message);
  });

  it('accepts what provkey generates, and a strong legacy value without --apply', () => {
    expect(() => checkImportedValue(token, DEFAULT_POLICIES.token, { apply: true, field: 'v' })).not.toThrow();
    expect(() => checkImportedValue(randomHex(32), DEFAULT_POLICIES.token, { apply: false, field: 'v' })).not.toThrow();
    expect(() => checkImportedValue(randomHex(32), DEFAULT_POLICIES.hex, { apply: true, field: 'v' })).not.toThrow();
    expect(estimatedBits('abc')).toBeLessThan(10);
  });
});

function randomHex(bytes: number): string {
  return Array.from({ length: bytes }, () => Math.floor(Math.random() * 256).toString(16).padStart(2, '0')).join('');
}
