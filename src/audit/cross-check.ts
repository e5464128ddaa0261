import type { KeyRecord } from '../core/model.js';
import type { AuditEntry } from './audit-log.js';

export interface AuditGap {
  key: string;
  problem: string;
}

/**
 * The hash chain proves no line was edited, inserted or reordered, but a log cut short at its
 * end — or deleted — is still a valid chain. The store remembers when each version's label last
 * changed, and every such change is audited before it is committed: a key whose newest change is
 * later than its newest audit event shows that lines are missing from this log.
 *
 * Only meaningful where this log sees every change: keys on the embedded file store next to it.
 * Keys holding a claim (a run in progress, or one to be converged) are left out.
 */
export function findAuditGaps(entries: AuditEntry[], records: KeyRecord[]): AuditGap[] {
  const lastEventAt = new Map<string, number>();
  for (const entry of entries) {
    if (entry.key) lastEventAt.set(entry.key, Math.max(lastEventAt.get(entry.key) ?? 0, Date.parse(entry.at)));
  }
  const gaps: AuditGap[] = [];
  for (const record of records) {
    if (record.state.claim || record.versions.length === 0) continue;
    const newest = Math.max(...record.versions.map((v) => Date.parse(v.labelledAt)));
    const audited = lastEventAt.get(record.key);
    if (audited === undefined) {
      gaps.push({ key: record.key, problem: `the store holds ${record.versions.length} version(s) of ${record.key} but the log has no event for it (deleted or replaced?)` });
    } else if (audited < newest) {
      gaps.push({ key: record.key, problem: `the store changed ${record.key} at ${new Date(newest).toISOString()}, after its last audit event (${new Date(audited).toISOString()}): lines are missing from the end of the log` });
    }
  }
  return gaps;
}
