import type { KeyRecord, LifecycleState, TestSummary, VersionMeta } from './model.js';

/**
 * The label changes of the rotation protocol as pure functions over a record's versions:
 * the engine decides when, these decide what.
 */

function relabel(versions: VersionMeta[], id: string, label: VersionMeta['label'], now: Date, extra: Partial<VersionMeta> = {}): VersionMeta[] {
  return versions.map((v) => (v.id === id ? { ...v, ...extra, label, labelledAt: now.toISOString() } : v));
}

/** finish: pending → current; current → previous (until grace ends) or revoked (no overlap). */
export function finishRotation(
  record: KeyRecord,
  pendingId: string,
  options: { overlap: boolean; graceMs: number; now: Date; test?: TestSummary },
): { versions: VersionMeta[]; state: LifecycleState; retiredId?: string } {
  const { now } = options;
  let versions = record.versions;
  let retiredId: string | undefined;
  for (const v of record.versions) {
    if (v.label !== 'current' || v.id === pendingId) continue;
    retiredId = v.id;
    versions = options.overlap
      ? relabel(versions, v.id, 'previous', now, { graceUntil: new Date(now.getTime() + options.graceMs).toISOString() })
      : relabel(versions, v.id, 'revoked', now);
  }
  versions = relabel(versions, pendingId, 'current', now);
  const { claim: _claim, lockout: _lockout, ...rest } = record.state;
  return {
    versions,
    state: { ...rest, lastRotatedAt: now.toISOString(), ...(options.test ? { lastTest: options.test } : {}) },
    retiredId,
  };
}

/** rollback: the pending version is marked failed, the current one stays, the claim is released. */
export function abandonPending(record: KeyRecord, pendingId: string | undefined, now: Date, test?: TestSummary): { versions: VersionMeta[]; state: LifecycleState } {
  const versions = pendingId ? relabel(record.versions, pendingId, 'failed', now) : record.versions;
  const { claim: _claim, ...rest } = record.state;
  return { versions, state: { ...rest, ...(test ? { lastTest: test } : {}) } };
}

export function revokeVersions(record: KeyRecord, ids: string[], now: Date): VersionMeta[] {
  return ids.reduce((versions, id) => relabel(versions, id, 'revoked', now), record.versions);
}

/** Any version left `pending` without a claim pointing at it was created by a run that died early. */
export function orphanPendingIds(record: KeyRecord): string[] {
  const claimed = record.state.claim?.pendingVersionId;
  return record.versions.filter((v) => v.label === 'pending' && v.id !== claimed).map((v) => v.id);
}
