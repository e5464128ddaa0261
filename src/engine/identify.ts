import type { CandidateVerdict, Identification, SecretInUse } from '../targets/target.js';
import type { KeyContext } from './key-context.js';
import { waitForVerdict } from './propagation.js';

/**
 * Which version does the target hold now? Asked when a change was interrupted or could not be
 * proven. A target with `identify` answers from evidence that costs no failed bind first;
 * otherwise each candidate gets one connection test, and where a refused credential costs a
 * failed bind (LDAP), only the most likely candidate is tried, once.
 */
export async function identifyAccepted(ctx: KeyContext, candidates: SecretInUse[]): Promise<Identification> {
  if (ctx.target.identify) return ctx.target.identify(candidates);
  const verdicts: Record<string, CandidateVerdict> = Object.fromEntries(candidates.map((c) => [c.fingerprint, 'unknown' as const]));
  const free = ctx.target.capabilities.negativeProbe === 'free';
  // Where a refused bind counts toward lockout: the most likely candidate, once, and only while
  // this run's failed-bind budget is unspent.
  const asked = free ? candidates : ctx.session.failedBindSpent(ctx.key.name) ? [] : candidates.slice(0, 1);
  for (const [i, candidate] of asked.entries()) {
    // Only the first (most likely) candidate waits for a change to propagate: a test that
    // costs nothing can be repeated, and one that costs a failed bind is asked once only.
    const { test } = await waitForVerdict(ctx.target, candidate, 'accept', free && i === 0 ? {} : { timeoutMs: 0 });
    verdicts[candidate.fingerprint] = test.verdict === 'error' ? 'unknown' : test.verdict;
    if (!free && test.verdict === 'rejected') ctx.session.spendFailedBind(ctx.key.name);
    if (test.verdict === 'accepted') break;
  }
  const detail = free
    ? `connection tests of ${asked.map((c) => c.fingerprint).join(', ')}`
    : asked.length
      ? `one connection test of ${asked[0]!.fingerprint} (a refused bind counts toward lockout: the others were not tried)`
      : "no test: this run's failed-bind budget is spent";
  return { verdicts, detail };
}

export type Decision =
  /** The target accepts this candidate (the first accepted, in the order asked). */
  | { kind: 'accepted'; secret: SecretInUse }
  /** Every candidate answered and was refused: the only positive evidence of a lockout. */
  | { kind: 'lockout' }
  /** Nothing accepted and at least one could not be reached: try again later (exit 5). */
  | { kind: 'unavailable' }
  /** Nothing accepted, nothing unreachable, but not all asked (failed-bind budget): a person decides. */
  | { kind: 'unknown' };

/** The engine's rule for an identification (CONTRACT-identify.md). */
export function decide(identification: Identification, candidates: SecretInUse[]): Decision {
  const verdictOf = (c: SecretInUse) => identification.verdicts[c.fingerprint] ?? 'unknown';
  const accepted = candidates.find((c) => verdictOf(c) === 'accepted');
  if (accepted) return { kind: 'accepted', secret: accepted };
  if (candidates.length > 0 && candidates.every((c) => verdictOf(c) === 'rejected')) return { kind: 'lockout' };
  if (candidates.some((c) => verdictOf(c) === 'unreachable')) return { kind: 'unavailable' };
  return { kind: 'unknown' };
}
