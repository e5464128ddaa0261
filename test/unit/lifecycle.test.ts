import { describe, expect, it } from 'vitest';
import { isClaimStale, newClaim } from '../../src/core/claim.js';
import { formatDuration, parseDuration } from '../../src/core/duration.js';
import type { KeyRecord, VersionMeta } from '../../src/core/model.js';
import { redact, registerSecret } from '../../src/core/redact.js';
import { dueWork, nextRotationAt } from '../../src/core/schedule.js';
import { abandonPending, finishRotation, orphanPendingIds, revokeVersions } from '../../src/core/transitions.js';

const t0 = new Date('2026-01-01T00:00:00Z');
const version = (id: string, label: VersionMeta['label'], createdAt = t0.toISOString(), extra: Partial<VersionMeta> = {}): VersionMeta => ({
  id, label, fingerprint: `sha256:${id.padStart(12, '0')}`, createdAt, labelledAt: createdAt, origin: 'generated', ...extra,
});
const record = (versions: VersionMeta[], state: KeyRecord['state'] = {}): KeyRecord => ({ key: 'k', versions, state, revision: '1' });

describe('durations', () => {
  it('parses units and combinations, refuses bare numbers', () => {
    expect(parseDuration('90s', 'f')).toBe(90_000);
    expect(parseDuration('1h30m', 'f')).toBe(5_400_000);
    expect(parseDuration('30d', 'f')).toBe(30 * 86_400_000);
    expect(parseDuration('0', 'f')).toBe(0);
    expect(() => parseDuration('60', 'keys.a.rotation.interval')).toThrow(/keys\.a\.rotation\.interval: is not a duration/);
    expect(() => parseDuration('2 days', 'f')).toThrow(/not a duration/);
    expect(() => parseDuration('5m junk', 'f')).toThrow(/not a duration/);
  });
  it('formats for people', () => {
    expect(formatDuration(532)).toBe('532ms');
    expect(formatDuration(90_061_000)).toBe('1d1h');
  });
});

describe('rotation transitions', () => {
  it('finish with overlap: pending→current, current→previous with a grace end', () => {
    const r = record([version('1', 'current'), version('2', 'pending')], { claim: newClaim('rotate', { host: 'h', pid: 1 }, t0) });
    const done = finishRotation(r, '2', { overlap: true, graceMs: 3_600_000, now: t0 });
    expect(done.versions.map((v) => [v.id, v.label])).toEqual([['1', 'previous'], ['2', 'current']]);
    expect(done.versions[0]!.graceUntil).toBe('2026-01-01T01:00:00.000Z');
    expect(done.state.claim).toBeUndefined();
    expect(done.retiredId).toBe('1');
  });

  it('finish without overlap revokes the old version and clears a lockout', () => {
    const r = record([version('1', 'current'), version('2', 'pending')], { lockout: { at: 'x', detail: 'y' } });
    const done = finishRotation(r, '2', { overlap: false, graceMs: 0, now: t0 });
    expect(done.versions.map((v) => v.label)).toEqual(['revoked', 'current']);
    expect(done.state.lockout).toBeUndefined();
  });

  it('abandon marks only the pending version failed and releases the claim', () => {
    const r = record([version('1', 'current'), version('2', 'pending')], { claim: newClaim('rotate', { host: 'h', pid: 1 }, t0) });
    const undone = abandonPending(r, '2', t0);
    expect(undone.versions.map((v) => v.label)).toEqual(['current', 'failed']);
    expect(undone.state.claim).toBeUndefined();
  });

  it('finds pending versions no claim points at', () => {
    const r = record([version('1', 'current'), version('2', 'pending'), version('3', 'pending')], { claim: { ...newClaim('rotate', { host: 'h', pid: 1 }, t0), pendingVersionId: '3' } });
    expect(orphanPendingIds(r)).toEqual(['2']);
    expect(revokeVersions(r, ['1'], t0).map((v) => v.label)).toEqual(['revoked', 'pending', 'pending']);
  });
});

describe('claims', () => {
  const here = { host: 'h', pid: 99, isAlive: (pid: number) => pid === 42 || pid === 99 };
  it('is live while its owner runs and it has not expired', () => {
    expect(isClaimStale(newClaim('rotate', { host: 'h', pid: 42 }, t0), t0, here)).toBe(false);
  });
  it('is stale at once when its owner on this host is gone', () => {
    expect(isClaimStale(newClaim('rotate', { host: 'h', pid: 7 }, t0), t0, here)).toBe(true);
  });
  it('a claim carrying our own pid is an earlier run of a container that always starts as that pid', () => {
    expect(isClaimStale(newClaim('rotate', { host: 'h', pid: 99 }, t0), t0, here)).toBe(true);
  });
  it('an owner on another host is trusted until the claim expires', () => {
    const claim = newClaim('rotate', { host: 'other', pid: 7 }, t0);
    expect(isClaimStale(claim, t0, here)).toBe(false);
    expect(isClaimStale(claim, new Date(t0.getTime() + 16 * 60_000), here)).toBe(true);
  });
});

describe('schedule', () => {
  const policy = { intervalMs: 30 * 86_400_000, graceMs: 86_400_000 };
  it('rotation is due after the interval', () => {
    const r = record([version('1', 'current')]);
    expect(nextRotationAt(r, policy)?.toISOString()).toBe('2026-01-31T00:00:00.000Z');
    expect(dueWork(r, policy, new Date('2026-01-30T00:00:00Z')).rotate).toBe(false);
    expect(dueWork(r, policy, new Date('2026-01-31T00:00:00Z')).rotate).toBe(true);
  });
  it('a directory expiry earlier than the interval wins, with a margin', () => {
    const r = record([version('1', 'current')]);
    const expiry = new Date('2026-01-10T00:00:00Z');
    expect(nextRotationAt(r, policy, expiry)!.getTime()).toBeLessThan(expiry.getTime());
  });
  it('previous versions are revoked once their grace ends', () => {
    const r = record([version('1', 'previous', undefined, { graceUntil: '2026-01-02T00:00:00.000Z' }), version('2', 'current')]);
    expect(dueWork(r, policy, new Date('2026-01-01T12:00:00Z')).revokeVersionIds).toEqual([]);
    expect(dueWork(r, policy, new Date('2026-01-02T00:00:00Z')).revokeVersionIds).toEqual(['1']);
  });
  it('no record, nothing due', () => {
    expect(dueWork(undefined, policy, t0)).toEqual({ rotate: false, revokeVersionIds: [] });
  });
});

describe('redaction', () => {
  it('replaces a registered secret anywhere in a line by its fingerprint', () => {
    const secret = 'pk_unit-test-secret-value-123456';
    registerSecret(secret);
    const line = redact(`server said: bad token ${secret}; again ${secret}`);
    expect(line).not.toContain(secret);
    expect(line).toMatch(/\[sha256:[0-9a-f]{12}\].*\[sha256:[0-9a-f]{12}\]/);
  });
});
