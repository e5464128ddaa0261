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
 * waiting out the TTL. `isAlive` is injected so this stays pure. Callers check before they
 * claim, so a claim carrying their own pid is never their own.
 */
export function isClaimStale(claim: Claim, now: Date, here: { host: string; pid: number; isAlive: (pid: number) => boolean }): boolean {
  if (Date.parse(claim.expiresAt) <= now.getTime()) return true;
  if (claim.owner.host !== here.host) return false;
  // Our own pid on our own host, before we claimed anything: an earlier run of a container
  // that always starts as the same pid (pid 1), and it is gone.
  return claim.owner.pid === here.pid || !here.isAlive(claim.owner.pid);
}
