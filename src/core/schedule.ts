import { createHash } from 'node:crypto';
import { parseDuration } from './duration.js';
import { UsageError } from './errors.js';
import type { KeyRecord } from './model.js';
import { versionByLabel } from './model.js';

/** A key's rotation policy in milliseconds (config/schema.ts parses the human durations). */
export interface RotationPolicy {
  /** Rotate when the current version is this old. */
  intervalMs: number;
  /** How long the previous version is still accepted after a rotation; 0 = no overlap. */
  graceMs: number;
}

/**
 * When the issuer stops accepting the current version: the earlier of what the target says
 * (LDAP pwdMaxAge) and what was recorded with the version (`import --expires-at`).
 */
export function currentExpiry(record: KeyRecord | undefined, externalExpiry?: Date): Date | undefined {
  const current = record && versionByLabel(record, 'current');
  const recorded = current?.expiresAt ? new Date(current.expiresAt) : undefined;
  if (!recorded) return externalExpiry;
  return externalExpiry && externalExpiry < recorded ? externalExpiry : recorded;
}

/** How long before an issuer's expiry a rotation is due: a tenth of the interval, at most a day. */
export function expiryMarginMs(policy: RotationPolicy): number {
  return Math.min(policy.intervalMs / 10, 86_400_000);
}

/** The one due rule: `status`, the dry-run plan and `rotate --due` all ask this. */
export function nextRotationAt(record: KeyRecord | undefined, policy: RotationPolicy, externalExpiry?: Date): Date | undefined {
  const current = record && versionByLabel(record, 'current');
  if (!current) return undefined;
  const byPolicy = new Date(Date.parse(current.createdAt) + policy.intervalMs);
  const expiry = currentExpiry(record, externalExpiry);
  if (!expiry) return byPolicy;
  // An issuer that expires the key itself wins: rotate a margin before it does.
  const beforeExpiry = new Date(expiry.getTime() - expiryMarginMs(policy));
  return beforeExpiry < byPolicy ? beforeExpiry : byPolicy;
}

/** `status` warns this long before the current version's expiry (and once it has passed). */
export const EXPIRY_WARNING_MS = 14 * 86_400_000;

export function expiryWarning(record: KeyRecord | undefined, now: Date, externalExpiry?: Date): string | undefined {
  const expiry = currentExpiry(record, externalExpiry);
  if (!expiry) return undefined;
  if (expiry.getTime() <= now.getTime()) return `the current version expired at ${expiry.toISOString()} (issuer's expiry): rotate it now`;
  if (expiry.getTime() - now.getTime() <= EXPIRY_WARNING_MS) return `the current version expires at ${expiry.toISOString()} (issuer's expiry); "rotate --due" rotates it before then`;
  return undefined;
}

/** `import --expires-at`: an ISO 8601 date or date-time in the future (a date alone means its midnight UTC). */
export function parseExpiresAt(text: string, now: Date): Date {
  const trimmed = text.trim();
  const ms = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(trimmed) ? Date.parse(trimmed.length === 10 ? `${trimmed}T00:00:00Z` : trimmed) : Number.NaN;
  if (Number.isNaN(ms)) throw new UsageError(`--expires-at: "${text}" is not a date (use e.g. 2027-06-30 or 2027-06-30T12:00:00Z)`, 'usage.expires_at');
  if (ms <= now.getTime()) throw new UsageError(`--expires-at: ${new Date(ms).toISOString()} has already passed; an expired value cannot be imported`, 'usage.expires_at');
  return new Date(ms);
}

export interface DueWork {
  rotate: boolean;
  /** Previous versions whose grace period has ended. */
  revokeVersionIds: string[];
}

/** A previous version's grace period is over (one without an end date never had one). */
export function graceEnded(graceUntil: string | null | undefined, now: Date): boolean {
  return !graceUntil || Date.parse(graceUntil) <= now.getTime();
}

export function dueWork(record: KeyRecord | undefined, policy: RotationPolicy, now: Date, externalExpiry?: Date): DueWork {
  if (!record) return { rotate: false, revokeVersionIds: [] };
  const next = nextRotationAt(record, policy, externalExpiry);
  const revokeVersionIds = record.versions.filter((v) => v.label === 'previous' && graceEnded(v.graceUntil, now)).map((v) => v.id);
  return { rotate: next !== undefined && next.getTime() <= now.getTime(), revokeVersionIds };
}

/** `--shard I/N`: this host rotates the I-th of N stable slices of the keys (1-based). */
export interface Shard {
  index: number;
  count: number;
}

export const MAX_SHARDS = 1000;
/** A fleet spreads its start over at most this long; a longer --jitter is a typo, not a plan. */
export const MAX_JITTER_MS = 3_600_000;

export function parseShard(text: string): Shard {
  const match = /^(\d{1,4})\/(\d{1,4})$/.exec(text.trim());
  const index = Number(match?.[1]);
  const count = Number(match?.[2]);
  if (!match || index < 1 || count > MAX_SHARDS || index > count) {
    throw new UsageError(`--shard: "${text}" must be I/N with 1 <= I <= N <= ${MAX_SHARDS} (e.g. 2/4)`, 'usage.shard');
  }
  return { index, count };
}

/**
 * Which slice a key belongs to: its name's SHA-256, not its position, so adding or removing
 * a key never moves the others, and every host computes the same answer.
 */
export function shardOfKey(name: string, count: number): number {
  return (createHash('sha256').update(name, 'utf8').digest().readUInt32BE(0) % count) + 1;
}

export function inShard(name: string, shard: Shard | undefined): boolean {
  return shard === undefined || shardOfKey(name, shard.count) === shard.index;
}

export function parseJitter(text: string): number {
  const ms = parseDuration(text, '--jitter');
  if (ms > MAX_JITTER_MS) throw new UsageError(`--jitter: "${text}" is longer than 1h (the start delay is bounded)`, 'usage.jitter');
  return ms;
}
