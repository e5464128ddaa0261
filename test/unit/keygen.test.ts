import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICIES, checkPolicy, entropyBits, generateSecret, type GenerationPolicy } from '../../src/core/keygen.js';
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
