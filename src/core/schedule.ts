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
