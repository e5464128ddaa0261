import type { KeyRecord } from './model.js';
import { versionByLabel } from './model.js';

/** A key's rotation policy in milliseconds (config/schema.ts parses the human durations). */
export interface RotationPolicy {
  /** Rotate when the current version is this old. */
  intervalMs: number;
  /** How long the previous version is still accepted after a rotation; 0 = no overlap. */
  graceMs: number;
}

export function nextRotationAt(record: KeyRecord | undefined, policy: RotationPolicy, externalExpiry?: Date): Date | undefined {
  const current = record && versionByLabel(record, 'current');
  if (!current) return undefined;
  const byPolicy = new Date(Date.parse(current.createdAt) + policy.intervalMs);
  if (!externalExpiry) return byPolicy;
  // A directory that expires the password itself wins: rotate a margin before it does.
  const margin = Math.min(policy.intervalMs / 10, 86_400_000);
  const beforeExpiry = new Date(externalExpiry.getTime() - margin);
  return beforeExpiry < byPolicy ? beforeExpiry : byPolicy;
}

export interface DueWork {
  rotate: boolean;
  /** Previous versions whose grace period has ended. */
  revokeVersionIds: string[];
}

export function dueWork(record: KeyRecord | undefined, policy: RotationPolicy, now: Date, externalExpiry?: Date): DueWork {
  if (!record) return { rotate: false, revokeVersionIds: [] };
  const next = nextRotationAt(record, policy, externalExpiry);
  const revokeVersionIds = record.versions
    .filter((v) => v.label === 'previous' && (!v.graceUntil || Date.parse(v.graceUntil) <= now.getTime()))
    .map((v) => v.id);
  return { rotate: next !== undefined && next.getTime() <= now.getTime(), revokeVersionIds };
}
