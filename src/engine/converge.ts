import { CLAIM_TTL_MS } from '../core/claim.js';
import { AdapterError, ConflictError, ExitCode } from '../core/errors.js';
import type { KeyRecord } from '../core/model.js';
import { versionById } from '../core/model.js';
import { abandonPending, finishRotation, orphanPendingIds } from '../core/transitions.js';
import { owner, secretOf, type KeyContext } from './key-context.js';
import { waitForVerdict } from './propagation.js';
import { StepTimer, resultsFor, type ResultFields } from './result.js';
import { proveRetired } from './retire.js';
import { rollback } from './rollback.js';

export interface Convergence {
  outcome: 'cleared' | 'rolled_back' | 'rolled_forward' | 'lockout' | 'busy';
  message: string;
  fingerprint?: string;
}

/**
 * What an operation that converged a stale claim first reports, when the convergence already
 * ended it (finished forward, another run is at it, or a lockout); undefined when the caller
 * goes on with its own work (the stale claim was cleared or rolled back).
 */
export function convergenceEndsOperation(converged: Convergence): ResultFields | undefined {
  const fingerprint = converged.fingerprint ? { fingerprint: converged.fingerprint } : {};
  switch (converged.outcome) {
    case 'busy':
      return { outcome: 'skipped', ok: true, exitCode: ExitCode.ok, message: converged.message };
    case 'rolled_forward':
      return { outcome: 'resumed', ok: true, exitCode: ExitCode.ok, message: converged.message, ...fingerprint };
    case 'lockout':
      return { outcome: 'lockout', ok: false, exitCode: ExitCode.needsHuman, message: converged.message, ...fingerprint };
    default:
      return undefined;
  }
}

/**
 * A run that finds a stale claim (its owner died, or it expired) converges the key before
 * doing anything else: if the target never saw the pending version it is simply abandoned;
 * otherwise the target is asked which version it accepts, and the run finishes forward
 * (pending works) or rolls back (it doesn't). Neither working is a lockout.
 */
export async function convergeStaleClaim(ctx: KeyContext, stale: KeyRecord): Promise<Convergence> {
  const name = ctx.key.name;
  const claim = stale.state.claim!;
  let record: KeyRecord;
  try {
    // Take the claim over first, so two runs never converge the same key at once.
    record = await ctx.store.update(name, stale.revision, {
      versions: stale.versions,
      state: { ...stale.state, claim: { ...claim, owner: owner(), expiresAt: new Date(Date.now() + CLAIM_TTL_MS).toISOString() } },
    });
  } catch (error) {
    if (error instanceof ConflictError) return { outcome: 'busy', message: 'another run is converging this key' };
    throw error;
  }
  if (claim.operation === 'revoke') return finishInterruptedRevoke(ctx, record);
  const now = new Date();
  const pendingId = claim.pendingVersionId;
  const pending = pendingId ? versionById(record, pendingId) : undefined;
  const orphans = orphanPendingIds(record);

  const targetUntouched = claim.step === 'claimed' || claim.step === 'created';
  if (!pending || pending.label !== 'pending' || targetUntouched) {
    let versions = record.versions;
    for (const id of [...orphans, ...(pending && pending.label === 'pending' ? [pending.id] : [])]) {
      versions = abandonPending({ ...record, versions }, id, now).versions;
    }
    const { claim: _dropped, ...state } = record.state;
    await ctx.session.recordAudit({ event: `${claim.operation}.abandoned`, key: name, outcome: 'rolled_back', detail: { step: claim.step, claimedAt: claim.startedAt } });
    await ctx.store.update(name, record.revision, { versions, state });
    for (const id of [...orphans, ...(pending && pending.label === 'pending' ? [pending.id] : [])]) {
      await ctx.store.disableVersion(name, id).catch(() => undefined);
    }
    return { outcome: 'cleared', message: `an interrupted ${claim.operation} (stopped at "${claim.step}") was abandoned; the target never saw its new version` };
  }

  const timer = new StepTimer();
  const next = await secretOf(ctx, pending);
  const fromVersion = claim.fromVersionId ? versionById(record, claim.fromVersionId) : undefined;
  const old = fromVersion ? await secretOf(ctx, fromVersion).catch(() => undefined) : undefined;
  const accepted = await waitForVerdict(ctx.target, next, 'accept');
  if (accepted.test.ok) {
    const finished = finishRotation(record, pending.id, {
      overlap: claim.overlap,
      graceMs: ctx.key.rotation.graceMs,
      now,
      test: { ok: true, at: now.toISOString(), versionId: pending.id, fingerprint: pending.fingerprint },
    });
    const fromStillLive = fromVersion && versionById(record, fromVersion.id)?.label === 'current';
    await ctx.session.recordAudit({
      event: `${claim.operation}.resumed`,
      key: name,
      outcome: 'resumed',
      fingerprint: pending.fingerprint,
      versionId: pending.id,
      detail: { step: claim.step, previous: old?.fingerprint ?? null },
    });
    await ctx.store.update(name, record.revision, { versions: finished.versions, state: finished.state });
    // Without overlap the old version must end up rejected: prove it unless that already happened.
    if (!claim.overlap && old && (finished.retiredId || !fromStillLive)) {
      const proof = await proveRetired(ctx, old, timer, { current: next });
      if (!proof.ok) return { outcome: 'lockout', message: proof.message, fingerprint: pending.fingerprint };
    }
    return { outcome: 'rolled_forward', message: `an interrupted ${claim.operation} was finished: ${pending.fingerprint} is current`, fingerprint: pending.fingerprint };
  }
  const reason = `an interrupted ${claim.operation} left ${pending.fingerprint} unaccepted`;
  const rolled = await rollback(ctx, record, next, old, timer, reason, resultsFor(name, claim.operation, timer));
  return { outcome: rolled.outcome === 'lockout' ? 'lockout' : 'rolled_back', message: rolled.message };
}

/**
 * A revoke that died part-way relabelled some versions `revoked` but may not have retired them
 * at the target, disabled them, or proven the rejection. Do those steps again for every version
 * it relabelled (they are idempotent), then release the claim.
 */
async function finishInterruptedRevoke(ctx: KeyContext, record: KeyRecord): Promise<Convergence> {
  const name = ctx.key.name;
  const claim = record.state.claim!;
  const timer = new StepTimer();
  const touched = record.versions.filter((v) => v.label === 'revoked' && v.labelledAt >= claim.startedAt);
  const currentMeta = record.versions.find((v) => v.label === 'current');
  const current = currentMeta ? await secretOf(ctx, currentMeta) : undefined;
  const problems: string[] = [];
  let proven = 0;
  for (const version of touched) {
    const old = await secretOf(ctx, version).catch((error: unknown) => {
      if (error instanceof AdapterError && error.kind === 'not_found') return undefined;
      throw error;
    });
    if (!old) {
      // Erased means its proof ran, but the run died before recording how it ended.
      problems.push(`NEEDS A HUMAN: an interrupted revoke left ${version.fingerprint} erased from the store before its outcome was recorded; check that the target rejects it`);
      continue;
    }
    const proof = await proveRetired(ctx, old, timer, current ? { current } : {});
    if (proof.ok) proven++;
    else problems.push(proof.message);
  }
  await ctx.session.recordAudit({ event: 'revoke.resumed', key: name, outcome: problems.length ? 'failed' : 'resumed', detail: { versions: touched.map((v) => v.fingerprint) } });
  const latest = (await ctx.store.read(name))!;
  const { claim: _released, ...state } = latest.state;
  const attention = problems.length ? { attention: { at: new Date().toISOString(), detail: problems.join('; ') } } : {};
  await ctx.store.update(name, latest.revision, { versions: latest.versions, state: { ...state, ...attention } });
  if (problems.length) return { outcome: 'lockout', message: problems.join('; ') };
  return { outcome: 'cleared', message: `an interrupted revoke was finished (${proven} version(s) retired and proven rejected)` };
}
