import { ExitCode } from '../core/errors.js';
import type { KeyRecord } from '../core/model.js';
import { abandonPending, finishRotation } from '../core/transitions.js';
import type { SecretInUse } from '../targets/target.js';
import type { KeyContext } from './key-context.js';
import { faultPoint } from './fault.js';
import { decide, identifyAccepted } from './identify.js';
import { waitForVerdict } from './propagation.js';
import { restoreConsumers } from './consumers.js';
import type { KeyResult, ResultFields, StepTimer } from './result.js';

/**
 * Undo a failed set/test/delivery: consumers given the current version back, then the target goes back to the current version, the pending version
 * is marked failed and disabled, the claim is released. If the current version no longer
 * works either, that is a lockout: recorded in the store and reported with exit code 3.
 */
export async function rollback(
  ctx: KeyContext,
  record: KeyRecord,
  next: SecretInUse,
  old: SecretInUse | undefined,
  timer: StepTimer,
  reason: string,
  result: (fields: ResultFields) => KeyResult,
): Promise<KeyResult> {
  const name = ctx.key.name;
  // Consumers first: one that presents the new version must have the current one back before
  // the target drops the new one; if that cannot be done, the target keeps both for the next run.
  const unrestored = await restoreConsumers(ctx, old, timer);
  if (unrestored) return keepForRetry(ctx, next, reason, unrestored.detail, result, unrestored.unavailable ? ExitCode.unavailable : ExitCode.needsHuman);
  await ctx.session.emit({ type: 'step-start', key: name, step: 'rollback' });
  const undone = await timer.run(
    'rollback',
    () => ctx.target.rollback({ next, ...(old ? { current: old } : {}) }),
    (r) => (r.ok ? { ok: true } : { ok: false, detail: `${r.reason}: ${r.detail}` }),
  );
  faultPoint('after-rollback');
  if (undone.ok && undone.kept === 'next') return keepNext(ctx, next, old, timer, reason, undone.detail ?? '', result);
  if (!undone.ok) {
    // The target did not go back. Erase nothing unless it is proven that the new version does
    // not work there (e.g. the set itself was refused); otherwise keep it for the next run,
    // which finds out which version the target holds and finishes from there.
    const back = undone.reason === 'unreachable' ? 'unavailable' : await provenBack(ctx, old, next, timer);
    if (back === 'back') return abandon(ctx, record, next, old, reason, undefined, result);
    const why = `the rollback ${undone.reason === 'unreachable' ? 'could not reach the target' : 'was refused'} (${undone.reason}: ${undone.detail})`;
    return keepForRetry(ctx, next, reason, why, result, back === 'unavailable' ? ExitCode.unavailable : ExitCode.failed);
  }
  if (old) {
    const check = await timer.run('verify-current', () => waitForVerdict(ctx.target, old, 'accept'), (w) => ({ ok: w.test.ok, detail: w.test.verdict }));
    timer.tests.push(check.test);
    if (!check.test.ok) {
      // Not proven back: ask which version the target holds, without spending binds beyond the budget.
      const candidates = [old, next];
      const identification = await timer.run('identify', () => identifyAccepted(ctx, candidates), (i) => ({ ok: true, detail: i.detail }));
      const decision = decide(identification, candidates);
      const why = `the rollback to ${old.fingerprint} was not accepted`;
      if (decision.kind === 'unavailable') return keepForRetry(ctx, next, reason, `${why}, and the target could not be reached to tell which version it holds`, result);
      if (decision.kind === 'unknown') {
        return keepForRetry(ctx, next, reason, `${why}; telling which version the target holds would spend failed binds beyond the lockout budget`, result, ExitCode.needsHuman);
      }
      if (decision.kind === 'accepted' && decision.secret === next) return keepNext(ctx, next, old, timer, reason, `${why}, but ${next.fingerprint} works`, result);
      if (decision.kind === 'lockout') return abandon(ctx, record, next, old, reason, `neither version works: ${reason}; then ${why}`, result);
    }
  }
  return abandon(ctx, record, next, old, reason, undefined, result);
}

/**
 * After a rollback that failed: is the target as it was anyway? The current version must work,
 * and the new one must not (implied where an account has one secret; otherwise one free
 * negative probe). One test each, no waiting: this only decides whether anything may be erased.
 */
async function provenBack(ctx: KeyContext, old: SecretInUse | undefined, next: SecretInUse, timer: StepTimer): Promise<'back' | 'unavailable' | 'unknown'> {
  if (old) {
    const check = await timer.run('verify-current', () => waitForVerdict(ctx.target, old, 'accept', { timeoutMs: 0 }), (w) => ({ ok: w.test.ok, detail: w.test.verdict }));
    timer.tests.push(check.test);
    if (check.test.verdict === 'unreachable') return 'unavailable';
    if (!check.test.ok) return 'unknown';
    if (!ctx.target.capabilities.overlap) return 'back';
  }
  if (ctx.target.capabilities.negativeProbe !== 'free') return 'unknown';
  const gone = await timer.run('verify-new-rejected', () => waitForVerdict(ctx.target, next, 'reject', { timeoutMs: 0 }), (w) => ({ ok: w.test.ok, detail: w.test.verdict }));
  timer.tests.push(gone.test);
  if (gone.test.ok) return 'back';
  return gone.test.verdict === 'unreachable' ? 'unavailable' : 'unknown';
}

/** The rollback is proven (or a lockout is): the pending version is marked failed and erased, the claim released. */
async function abandon(
  ctx: KeyContext,
  record: KeyRecord,
  next: SecretInUse,
  old: SecretInUse | undefined,
  reason: string,
  lockout: string | undefined,
  result: (fields: ResultFields) => KeyResult,
): Promise<KeyResult> {
  const name = ctx.key.name;
  const now = new Date();
  const fresh = (await ctx.store.read(name)) ?? record;
  const abandoned = abandonPending(fresh, next.versionId, now, { ok: false, at: now.toISOString(), ...(next.versionId ? { versionId: next.versionId } : {}), fingerprint: next.fingerprint });
  const state = lockout ? { ...abandoned.state, lockout: { at: now.toISOString(), detail: lockout } } : abandoned.state;
  await ctx.session.emit({
    type: 'audit',
    event: 'rotate.rolled_back',
    key: name,
    outcome: lockout ? 'lockout' : 'rolled_back',
    fingerprint: next.fingerprint,
    ...(next.versionId ? { versionId: next.versionId } : {}),
    detail: { reason, current: old?.fingerprint ?? null },
  });
  await ctx.store.update(name, fresh.revision, { versions: abandoned.versions, state });
  if (next.versionId) await ctx.store.disableVersion(name, next.versionId).catch(() => undefined);
  if (lockout) return result({ outcome: 'lockout', ok: false, exitCode: ExitCode.needsHuman, message: `LOCKOUT: ${lockout}` });
  return result({
    outcome: 'rolled_back',
    ok: false,
    exitCode: ExitCode.failed,
    message: `rolled back: ${reason}; ${old ? `${old.fingerprint} is still current` : 'the key was not added'}`,
  });
}

/**
 * A rollback that could not be proven: the pending version keeps its value and the claim
 * stays, so the next run finds out which version the
 * target accepts and finishes the rollback, or the rotation. Exit 5: try again later.
 */
async function keepForRetry(
  ctx: KeyContext,
  next: SecretInUse,
  reason: string,
  why: string,
  result: (fields: ResultFields) => KeyResult,
  exitCode: ExitCode = ExitCode.unavailable,
): Promise<KeyResult> {
  const name = ctx.key.name;
  await ctx.session.emit({ type: 'audit', event: 'rotate.rollback_unproven', key: name, outcome: 'failed', fingerprint: next.fingerprint, ...(next.versionId ? { versionId: next.versionId } : {}), detail: { reason, why } });
  return result({
    outcome: 'failed',
    ok: false,
    exitCode,
    message: `${exitCode === ExitCode.needsHuman ? 'NEEDS A HUMAN: ' : ''}${reason}; ${why}. ${next.fingerprint} is kept pending (with its value) until the next run proves which version the target holds`,
  });
}

/**
 * The target could not go back but the new version works (LDAP `rollback: keep-new`): the new
 * version becomes current and the old one is revoked. Still exit 1: the rotation as asked
 * (with its test) did not succeed, and someone should look at why.
 */
async function keepNext(
  ctx: KeyContext,
  next: SecretInUse,
  old: SecretInUse | undefined,
  timer: StepTimer,
  reason: string,
  detail: string,
  result: (fields: ResultFields) => KeyResult,
): Promise<KeyResult> {
  const name = ctx.key.name;
  const now = new Date();
  const fresh = (await ctx.store.read(name))!;
  const kept = finishRotation(fresh, next.versionId!, {
    overlap: false,
    graceMs: 0,
    now,
    test: { ok: false, at: now.toISOString(), versionId: next.versionId!, fingerprint: next.fingerprint },
  });
  await ctx.session.emit({
    type: 'audit',
    event: 'rotate.kept_new',
    key: name,
    outcome: 'failed',
    fingerprint: next.fingerprint,
    versionId: next.versionId!,
    detail: { reason, previous: old?.fingerprint ?? null },
  });
  await ctx.store.update(name, fresh.revision, { versions: kept.versions, state: kept.state });
  if (old?.versionId) await ctx.store.disableVersion(name, old.versionId).catch(() => undefined);
  return result({
    outcome: 'failed',
    ok: false,
    exitCode: ExitCode.failed,
    message: `kept ${next.fingerprint} as current (rollback: keep-new) because ${reason}; ${detail}`,
  });
}
