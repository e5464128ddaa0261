import { randomInt } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { ExitCode, mostSerious } from '../core/errors.js';
import { dueWork } from '../core/schedule.js';
import { convergeFirstSeen } from './converge.js';
import { readExisting, secretOf, type KeyContext } from './key-context.js';
import { resultsFor, StepTimer, type KeyResult } from './result.js';
import { revokeKey } from './revoke.js';
import { rotateKey } from './rotate.js';

/** `--jitter`: a uniformly random start delay in [0, maxMs], so hosts on one cron line do not start at once. */
export async function waitJitter(maxMs: number, debug: (message: string) => void): Promise<number> {
  if (maxMs <= 0) return 0;
  const delayMs = randomInt(0, maxMs + 1);
  debug(`jitter: waiting ${delayMs} ms (up to ${maxMs} ms) before the first claim`);
  await delay(delayMs);
  return delayMs;
}

/**
 * `rotate --due`: what the schedule says is due for one key: end expired grace periods
 * (revoke those previous versions), then rotate if the current version is older than the
 * interval or the target itself (LDAP pwdMaxAge) is about to expire it. Due-ness is decided
 * again once the key is claimed: another cron host may have rotated it in between.
 */
export async function runDue(ctx: KeyContext): Promise<KeyResult> {
  const timer = new StepTimer(ctx.session.stepEvents(ctx.key.name));
  // A crashed run first: the key may have no current version until it is converged.
  const { ended, seen } = await convergeFirstSeen(ctx, timer);
  if (ended) return resultsFor(ctx.key.name, 'rotate', timer)(ended);
  const { record, current } = await readExisting(ctx, seen);
  const expiry = ctx.target.expiresAt ? await ctx.target.expiresAt(await secretOf(ctx, current)) : undefined;
  const work = dueWork(record, ctx.key.rotation, new Date(), expiry);
  const results: KeyResult[] = timer.steps.length ? [resultsFor(ctx.key.name, 'rotate', timer)({ outcome: 'resumed', ok: true, exitCode: ExitCode.ok, message: 'an interrupted run was converged' })] : [];
  for (const id of work.revokeVersionIds) results.push(await revokeKey(ctx, { version: id }, 'grace-end'));
  if (work.rotate) {
    results.push(await rotateKey(ctx, { stillDue: (claimed) => dueWork(claimed, ctx.key.rotation, new Date(), expiry).rotate }));
  }
  if (results.length === 0) {
    return { key: ctx.key.name, operation: 'rotate', outcome: 'skipped', ok: true, exitCode: ExitCode.ok, message: 'not due', steps: [], tests: [], ms: 0 };
  }
  const worst = results.reduce((a, b) => (mostSerious(a.exitCode, b.exitCode) === b.exitCode ? b : a));
  const last = results.at(-1)!;
  return {
    ...last,
    ok: results.every((r) => r.ok),
    exitCode: worst.exitCode,
    message: results.map((r) => r.message).join('; '),
    steps: results.flatMap((r) => r.steps),
    tests: results.flatMap((r) => r.tests),
  };
}
