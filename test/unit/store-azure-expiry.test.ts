import { describe, expect, it } from 'vitest';
import { valueExpiresOn } from '../../src/stores/azure/expiry.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const rotation = { intervalMs: 30 * DAY, graceMs: HOUR };
const created = '2026-01-01T00:00:00.000Z';
const t0 = Date.parse(created);

describe("azure expiresOn: from the key's rotation policy", () => {
  it('a version in use expires interval + grace after it was created', () => {
    expect(valueExpiresOn({ label: 'current', createdAt: created }, rotation, undefined)?.toISOString()).toBe(new Date(t0 + 30 * DAY + HOUR).toISOString());
    expect(valueExpiresOn({ label: 'pending', createdAt: created }, rotation, undefined)?.getTime()).toBe(t0 + 30 * DAY + HOUR);
  });

  it('a previous version expires when its grace period ends', () => {
    expect(valueExpiresOn({ label: 'previous', createdAt: created, graceUntil: '2026-02-03T04:05:06.000Z' }, rotation, undefined)?.toISOString()).toBe('2026-02-03T04:05:06.000Z');
  });

  it("never after the issuer's own expiry", () => {
    expect(valueExpiresOn({ label: 'current', createdAt: created, expiresAt: '2026-01-10T00:00:00.000Z' }, rotation, undefined)?.toISOString()).toBe('2026-01-10T00:00:00.000Z');
  });

  it('whole seconds, rounded up: never before the planned instant', () => {
    expect(valueExpiresOn({ label: 'previous', createdAt: created, graceUntil: '2026-02-03T04:05:06.001Z' }, rotation, undefined)?.toISOString()).toBe('2026-02-03T04:05:07.000Z');
  });

  it("the store's valueExpiry replaces interval + grace", () => {
    expect(valueExpiresOn({ label: 'current', createdAt: created }, rotation, 7 * DAY)?.getTime()).toBe(t0 + 7 * DAY);
    expect(valueExpiresOn({ label: 'current', createdAt: created }, undefined, 7 * DAY)?.getTime()).toBe(t0 + 7 * DAY);
  });

  it('none for revoked or failed versions (disabled instead), nor without a policy', () => {
    expect(valueExpiresOn({ label: 'revoked', createdAt: created }, rotation, undefined)).toBeUndefined();
    expect(valueExpiresOn({ label: 'failed', createdAt: created }, rotation, undefined)).toBeUndefined();
    expect(valueExpiresOn({ label: 'current', createdAt: created }, undefined, undefined)).toBeUndefined();
  });

  it('renewing an overdue live version: no earlier than now + the --due margin (a tenth of the interval, at most a day)', () => {
    const now = t0 + 90 * DAY;
    expect(valueExpiresOn({ label: 'current', createdAt: created }, rotation, undefined, now)?.getTime()).toBe(now + DAY);
    expect(valueExpiresOn({ label: 'current', createdAt: created }, { intervalMs: 10 * 60_000, graceMs: 0 }, undefined, now)?.getTime()).toBe(now + 60_000);
    // A version not yet at its planned expiry keeps it.
    expect(valueExpiresOn({ label: 'current', createdAt: created }, rotation, undefined, t0 + DAY)?.getTime()).toBe(t0 + 30 * DAY + HOUR);
  });
});
