import { describe, expect, it } from 'vitest';
import type { KeyRecord } from '../../src/core/model.ts';
import { expiryWarning, inShard, nextRotationAt, parseExpiresAt, parseJitter, parseShard, shardOfKey } from '../../src/core/schedule.ts';

const DAY = 86_400_000;
const now = new Date('2027-01-10T00:00:00Z');

function record(createdAt: string, expiresAt?: string): KeyRecord {
  return {
    key: 'app',
    revision: '1',
    state: {},
    versions: [{ id: '1', label: 'current', fingerprint: 'sha256:000000000000', createdAt, labelledAt: createdAt, origin: 'imported', ...(expiresAt ? { expiresAt } : {}) }],
  };
}

describe('--shard', () => {
  it('parses I/N within 1 <= I <= N <= 1000 and refuses the rest', () => {
    expect(parseShard('2/4')).toEqual({ index: 2, count: 4 });
    expect(parseShard('1000/1000')).toEqual({ index: 1000, count: 1000 });
    for (const bad of ['0/4', '5/4', '1/1001', '1/0', '2', '1/2/3', ' /4', 'a/4', '-1/4', '1.5/4']) expect(() => parseShard(bad), bad).toThrow(/--shard/);
  });
  it('a key has exactly one shard, the same on every call', () => {
    for (const name of ['a', 'entra-scim-prod', 'ldap.provisioner']) {
      const owners = [1, 2, 3, 4, 5].filter((index) => inShard(name, { index, count: 5 }));
      expect(owners).toEqual([shardOfKey(name, 5)]);
    }
    expect(inShard('anything', undefined)).toBe(true);
  });
});

describe('--jitter', () => {
  it('is a duration of at most 1h', () => {
    expect(parseJitter('10m')).toBe(600_000);
    expect(parseJitter('1h')).toBe(3_600_000);
    expect(() => parseJitter('61m')).toThrow(/longer than 1h/);
    expect(() => parseJitter('ten')).toThrow(/--jitter/);
  });
});

describe('issuer expiry (import --expires-at)', () => {
  const policy = { intervalMs: 30 * DAY, graceMs: DAY };
  it('rotation is due a margin before the expiry when that comes before the interval', () => {
    expect(nextRotationAt(record('2027-01-01T00:00:00Z', '2027-01-20T00:00:00Z'), policy)?.toISOString()).toBe('2027-01-19T00:00:00.000Z');
    expect(nextRotationAt(record('2027-01-01T00:00:00Z', '2028-01-01T00:00:00Z'), policy)?.toISOString()).toBe('2027-01-31T00:00:00.000Z');
    // The target's own expiry (LDAP pwdMaxAge) and the recorded one: the earlier wins.
    expect(nextRotationAt(record('2027-01-01T00:00:00Z', '2027-01-20T00:00:00Z'), policy, new Date('2027-01-15T00:00:00Z'))?.toISOString()).toBe('2027-01-14T00:00:00.000Z');
  });
  it('status warns within 14 days and once it has passed', () => {
    expect(expiryWarning(record('2027-01-01T00:00:00Z', '2027-03-01T00:00:00Z'), now)).toBeUndefined();
    expect(expiryWarning(record('2027-01-01T00:00:00Z', '2027-01-20T00:00:00Z'), now)).toMatch(/expires at 2027-01-20/);
    expect(expiryWarning(record('2027-01-01T00:00:00Z', '2027-01-05T00:00:00Z'), now)).toMatch(/expired at 2027-01-05/);
    expect(expiryWarning(record('2027-01-01T00:00:00Z'), now)).toBeUndefined();
  });
  it('--expires-at takes a future ISO date or date-time', () => {
    expect(parseExpiresAt('2027-06-30', now).toISOString()).toBe('2027-06-30T00:00:00.000Z');
    expect(parseExpiresAt('2027-06-30T12:00:00+02:00', now).toISOString()).toBe('2027-06-30T10:00:00.000Z');
    for (const bad of ['2026-12-31', '30/06/2027', 'tomorrow', '2027-02-30x']) expect(() => parseExpiresAt(bad, now), bad).toThrow(/--expires-at/);
  });
});
