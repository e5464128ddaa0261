import type { ApplyResult, SecretInUse } from '../targets/target.js';
import type { KeyContext } from './key-context.js';
import { faultPoint } from './fault.js';
import { waitForVerdict } from './propagation.js';
import type { StepTimer } from './result.js';

/**
 * Makes the target reject `old`, disables it in the store, and proves the rejection.
 * A rejection that cannot be proven is never reported as success: the caller turns it into
 * exit code 3, because a revoked key the target still accepts needs a human now.
 */
export async function proveRetired(
  ctx: KeyContext,
  old: SecretInUse,
  timer: StepTimer,
  options: { current?: SecretInUse; probe?: 'auto' | 'always'; disable?: boolean } = {},
): Promise<{ ok: boolean; message: string; skipped?: boolean }> {
  const name = ctx.key.name;
  ctx.session.progress({ type: 'step', key: name, step: 'retire' });
  const retired = await timer.run(
    'retire',
    () => ctx.target.retire({ old, ...(options.current ? { current: options.current } : {}) }),
    (r) => (r.ok ? { ok: true, ...(r.detail ? { detail: r.detail } : {}) } : { ok: false, detail: `${r.reason}: ${r.detail}` }),
  );
  faultPoint('after-retire');
  const outcome = await proveRejection(ctx, old, timer, retired, options.probe ?? 'auto');
  // The value is erased only once the proof is done: a run killed while proving leaves it for
  // the next run to prove again. (Its label already says revoked, so apps reading the store
  // have stopped accepting it.)
  if (old.versionId && options.disable !== false) await ctx.store.disableVersion(name, old.versionId);
  return outcome;
}

async function proveRejection(
  ctx: KeyContext,
  old: SecretInUse,
  timer: StepTimer,
  retired: ApplyResult,
  probe: 'auto' | 'always',
): Promise<{ ok: boolean; message: string; skipped?: boolean }> {
  const name = ctx.key.name;
  const guarded = ctx.target.capabilities.negativeProbe === 'forbidden' && probe !== 'always';
  if (guarded && !retired.ok) {
    // Without a probe, a failed retire is all we know: never call that a revoke.
    await ctx.session.recordAudit({ event: 'retire.unproven', key: name, outcome: 'failed', fingerprint: old.fingerprint, ...(old.versionId ? { versionId: old.versionId } : {}), detail: { reason: retired.reason } });
    return { ok: false, message: `NEEDS A HUMAN: ${old.fingerprint} is revoked in the store but retiring it at the target failed (${retired.reason}: ${retired.detail}), and the lockout guard forbids probing it` };
  }
  if (guarded) {
    timer.steps.push({ step: 'prove-rejected', ok: true, ms: 0, endedAtMs: timer.elapsed(), detail: 'not probed: a failed bind could lock the account (lockout guard)' });
    return { ok: true, skipped: true, message: `${old.fingerprint} retired (rejection not probed: lockout guard)` };
  }
  const proof = await timer.run(
    'prove-rejected',
    () => waitForVerdict(ctx.target, old, 'reject'),
    (w) => ({ ok: w.test.ok, detail: `${w.test.verdict} after ${w.attempts} attempt(s)` }),
  );
  timer.tests.push(proof.test);
  if (proof.test.ok) return { ok: true, message: `${old.fingerprint} is rejected by the target` };
  const why = retired.ok ? `the target still ${proof.test.verdict === 'accepted' ? 'accepts' : 'cannot be shown to reject'} it` : `retiring it failed (${retired.ok ? '' : `${retired.reason}: ${retired.detail}`})`;
  await ctx.session.recordAudit({
    event: 'retire.unproven',
    key: name,
    outcome: 'failed',
    fingerprint: old.fingerprint,
    ...(old.versionId ? { versionId: old.versionId } : {}),
    detail: { verdict: proof.test.verdict },
  });
  return { ok: false, message: `NEEDS A HUMAN: ${old.fingerprint} is revoked in the store but ${why}` };
}
