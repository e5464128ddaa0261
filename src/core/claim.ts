import { randomUUID } from 'node:crypto';
import type { Claim, Operation } from './model.js';

/** How long a claim protects a rotation before another run may take it over. */
export const CLAIM_TTL_MS = 15 * 60_000;

export function newClaim(operation: Operation, owner: Claim['owner'], now: Date, extra: Partial<Claim> = {}): Claim {
  return {
    id: randomUUID(),
    operation,
    owner,
    startedAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + CLAIM_TTL_MS).toISOString(),
    step: 'claimed',
    overlap: true,
    ...extra,
  };
}

/**
 * A claim is stale when it expired, or when its owner ran on this host and that process is
 * gone (a crashed or killed cron run): then the next run may converge it at once instead of
 * waiting out the TTL. `isAlive` is injected so this stays pure.
 */
export function isClaimStale(claim: Claim, now: Date, here: { host: string; isAlive: (pid: number) => boolean }): boolean {
  if (Date.parse(claim.expiresAt) <= now.getTime()) return true;
  return claim.owner.host === here.host && !here.isAlive(claim.owner.pid);
}
