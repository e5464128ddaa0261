import { describe, expect, it } from 'vitest';
import { assumedFreeAllowed, identifyRoom } from '../../src/targets/ldap/ad-lockout.ts';

describe('AD identify: failed binds that may count toward lockoutThreshold in one run', () => {
  it('lockoutThreshold − 2 − badPwdCount, at most two; two at threshold 3 with badPwdCount 0; none within two of the limit', () => {
    expect(identifyRoom(3, 0, 0)).toBe(2);
    expect(identifyRoom(3, 1, 0)).toBe(1);
    expect(identifyRoom(3, 2, 0)).toBe(0);
    expect(identifyRoom(6, 0, 0)).toBe(2);
    expect(identifyRoom(6, 3, 0)).toBe(1);
    expect(identifyRoom(6, 4, 0)).toBe(0);
    expect(identifyRoom(10, 0, 0)).toBe(2);
    // This run's own count: the room shrinks with what it spent.
    expect(identifyRoom(3, 0, 1)).toBe(1);
    expect(identifyRoom(6, 0, 2)).toBe(0);
  });

  it('one when badPwdCount cannot be read; an unknown threshold is taken as 3; threshold 0 is no lockout', () => {
    expect(identifyRoom(3, undefined, 0)).toBe(1);
    expect(identifyRoom(6, undefined, 1)).toBe(0);
    expect(identifyRoom(undefined, 0, 0)).toBe(2);
    expect(identifyRoom(undefined, 2, 0)).toBe(0);
    expect(identifyRoom(0, 50, 10)).toBe(Number.POSITIVE_INFINITY);
  });

  it('a bind assumed free (n-2 rule) only while a failure that did count would still leave the account below the limit', () => {
    expect(assumedFreeAllowed(3, 0, 0)).toBe(true);
    expect(assumedFreeAllowed(3, 1, 0)).toBe(true);
    expect(assumedFreeAllowed(3, 2, 0)).toBe(false);
    expect(assumedFreeAllowed(3, 0, 2)).toBe(false);
    expect(assumedFreeAllowed(6, 4, 0)).toBe(true);
    expect(assumedFreeAllowed(6, 5, 0)).toBe(false);
    expect(assumedFreeAllowed(3, undefined, 5)).toBe(true);
    expect(assumedFreeAllowed(0, 9, 9)).toBe(true);
  });
});
