import { CLAIM_TTL_MS, isClaimStale, newClaim } from '../core/claim.js';
import { AdapterError, ConflictError, ExitCode } from '../core/errors.js';
import type { Claim, KeyRecord } from '../core/model.js';
import type { SecretInUse } from '../targets/target.js';
import { versionById } from '../core/model.js';
import { abandonPending, finishRotation, orphanPendingIds } from '../core/transitions.js';
import { owner, secretOf, thisRun, type KeyContext } from './key-context.js';
import { decide, identifyAccepted } from './identify.js';
import { StepTimer, resultsFor, type ResultFields } from './result.js';
import { settleRetired, type RetireProof } from './retire.js';
import { rollback } from './rollback.js';
import { deliverToConsumers } from './consumers.js';
import { ABANDONED, RESUMED } from './events.js';

export interface Convergence {
  /**
   * `unavailable`: the target (or store) could not be reached to find out; the claim is kept
   * and the next run tries again (exit 5). `needs_human`: nothing could be proven without
   * spending failed binds beyond the budget; no lockout is recorded (exit 3).
   */
  outcome: 'cleared' | 'rolled_back' | 'rolled_forward' | 'lockout' | 'busy' | 'unavailable' | 'needs_human';
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
    case 'unavailable':
      return { outcome: 'failed', ok: false, exitCode: ExitCode.unavailable, message: converged.message, ...fingerprint };
    case 'needs_human':
      return { outcome: 'failed', ok: false, exitCode: ExitCode.needsHuman, message: converged.message, ...fingerprint };
    default:
      return undefined;
  }
}

/**
 * Before an operation needs a current version: a claim another live run holds ends it
 * (skipped), and a stale one is converged first, since a crash can leave a key whose only
 * usable version is still pending (issue 7, item 3). Undefined: go on with the operation.
 */
export async function convergeFirst(ctx: KeyContext, timer: StepTimer): Promise<ResultFields | undefined> {
  return (await convergeFirstSeen(ctx, timer)).ended;
}

/**
 * convergeFirst that also hands back the record it read when there was nothing to converge, so
 * the operation goes on from it instead of reading the key again (`seen` is absent when a
 * convergence changed the key: read it afresh).
 */
export async function convergeFirstSeen(ctx: KeyContext, timer: StepTimer): Promise<{ ended?: ResultFields; seen?: { record: KeyRecord | undefined } }> {
  const record = await ctx.store.read(ctx.key.name);
  const claim = record?.state.claim;
  if (!record || !claim) return { seen: { record } };
  if (!isClaimStale(claim, new Date(), thisRun())) {
    return { ended: { outcome: 'skipped', ok: true, exitCode: ExitCode.ok, message: `${claim.operation} already in progress on ${claim.owner.host} (pid ${claim.owner.pid}) since ${claim.startedAt}` } };
  }
  await ctx.session.emit({ type: 'step-start', key: ctx.key.name, step: 'converge', detail: 'a previous run stopped part-way' });
  const converged = await timer.run('converge', () => convergeStaleClaim(ctx, record));
  const ended = convergenceEndsOperation(converged);
  return ended ? { ended } : {};
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
    await ctx.session.emit({ type: 'audit', event: ABANDONED[claim.operation], key: name, outcome: 'rolled_back', detail: { step: claim.step, claimedAt: claim.startedAt } });
    await ctx.store.update(name, record.revision, { versions, state });
    for (const id of [...orphans, ...(pending && pending.label === 'pending' ? [pending.id] : [])]) {
      await ctx.store.disableVersion(name, id).catch(() => undefined);
    }
    return { outcome: 'cleared', message: `an interrupted ${claim.operation} (stopped at "${claim.step}") was abandoned; the target never saw its new version` };
  }

  const timer = new StepTimer(ctx.session.stepEvents(ctx.key.name));
  const next = await secretOf(ctx, pending);
  const fromVersion = claim.fromVersionId ? versionById(record, claim.fromVersionId) : undefined;
  const old = fromVersion ? await secretOf(ctx, fromVersion).catch(() => undefined) : undefined;
  // Most likely current first: once "set" was stored the target had the new version. At
  // "setting" a target with overlap may hold both (finishing forward is then the least work);
  // one with a single secret per account more likely still holds the old one.
  const oldFirst = claim.step === 'setting' && !ctx.target.capabilities.overlap;
  const candidates = !old ? [next] : oldFirst ? [old, next] : [next, old];
  // A stored "tested" is evidence in itself: the interrupted run recorded that the target accepted
  // the new version (each step's outcome is stored before the next side effect), so no bind is spent.
  const identification =
    claim.step === 'tested'
      ? { verdicts: { [next.fingerprint]: 'accepted' as const }, detail: `the interrupted run stored a passing connection test of ${next.fingerprint}` }
      : await timer.run('identify', () => identifyAccepted(ctx, candidates), (i) => ({ ok: true, detail: i.detail }));
  const decision = decide(identification, candidates);
  if (decision.kind === 'accepted' && decision.secret === next) {
    // The target holds the new version: the consumers get it too before anything is finished.
    const delivered = await deliverToConsumers(ctx, record, next, timer);
    if (!delivered.ok) {
      const rolled = await rollback(ctx, delivered.record, next, old, timer, `an interrupted ${claim.operation}: ${delivered.reason}`, resultsFor(name, claim.operation, timer));
      if (rolled.exitCode === ExitCode.unavailable || delivered.exitCode === ExitCode.unavailable) return { outcome: 'unavailable', message: rolled.message };
      if (rolled.exitCode === ExitCode.needsHuman) return { outcome: rolled.outcome === 'lockout' ? 'lockout' : 'needs_human', message: rolled.message };
      return { outcome: 'rolled_back', message: rolled.message };
    }
    record = delivered.record;
    const finished = finishRotation(record, pending.id, {
      overlap: claim.overlap,
      graceMs: ctx.key.rotation.graceMs,
      now,
      test: { ok: true, at: now.toISOString(), versionId: pending.id, fingerprint: pending.fingerprint },
    });
    const fromStillLive = fromVersion && versionById(record, fromVersion.id)?.label === 'current';
    await ctx.session.emit({
      type: 'audit',
      event: RESUMED[claim.operation],
      key: name,
      outcome: 'resumed',
      fingerprint: pending.fingerprint,
      versionId: pending.id,
      detail: { step: claim.step, previous: old?.fingerprint ?? null, evidence: identification.detail },
    });
    // Without overlap the old version must end up rejected: the finish keeps a revoke claim on
    // it until that is proven, so a crash or an outage in between is resumed like a revoke.
    const retiring = !claim.overlap && old && (finished.retiredId || !fromStillLive) ? old : undefined;
    const state = retiring?.versionId ? { ...finished.state, claim: retireClaim(now, retiring.versionId, claim.operation) } : finished.state;
    const committed = await ctx.store.update(name, record.revision, { versions: finished.versions, state });
    if (retiring) {
      const proof = await proveRetiredAfterFinish(ctx, committed, retiring, next, timer, { noFailedBind: true });
      if (proof.unavailable) return { outcome: 'unavailable', message: `${pending.fingerprint} is current; ${proof.message}`, fingerprint: pending.fingerprint };
      if (!proof.ok) return { outcome: 'lockout', message: proof.message, fingerprint: pending.fingerprint };
    }
    return { outcome: 'rolled_forward', message: `an interrupted ${claim.operation} was finished: ${pending.fingerprint} is current`, fingerprint: pending.fingerprint };
  }
  if (decision.kind === 'unavailable') {
    return { outcome: 'unavailable', message: `an interrupted ${claim.operation} is waiting: the target could not be reached to tell which version it holds (${identification.detail}); ${pending.fingerprint} is kept pending for the next run` };
  }
  if (decision.kind === 'unknown') {
    return { outcome: 'needs_human', message: `NEEDS A HUMAN: an interrupted ${claim.operation} left the target holding ${candidates.map((c) => c.fingerprint).join(' or ')}, and telling which would spend failed binds beyond the lockout budget; check with "provkey test ${name}"` };
  }
  if (decision.kind === 'accepted' && !ctx.target.capabilities.overlap) {
    // One secret per account, and it is the old one: the new version never arrived. Nothing to undo at the target.
    const abandoned = abandonPending(record, pending.id, now);
    await ctx.session.emit({ type: 'audit', event: ABANDONED[claim.operation], key: name, outcome: 'rolled_back', fingerprint: pending.fingerprint, versionId: pending.id, detail: { step: claim.step, evidence: identification.detail } });
    await ctx.store.update(name, record.revision, { versions: abandoned.versions, state: abandoned.state });
    await ctx.store.disableVersion(name, pending.id);
    return { outcome: 'cleared', message: `an interrupted ${claim.operation} was abandoned: the target still holds ${decision.secret.fingerprint}` };
  }
  const reason = `an interrupted ${claim.operation} left ${pending.fingerprint} unaccepted`;
  const rolled = await rollback(ctx, record, next, old, timer, reason, resultsFor(name, claim.operation, timer));
  if (rolled.exitCode === ExitCode.unavailable) return { outcome: 'unavailable', message: rolled.message };
  if (rolled.exitCode === ExitCode.needsHuman) return { outcome: rolled.outcome === 'lockout' ? 'lockout' : 'needs_human', message: rolled.message };
  return { outcome: 'rolled_back', message: rolled.message };
}

/** The claim a finished no-overlap rotation keeps until the replaced version is proven rejected. */
export function retireClaim(now: Date, oldVersionId: string, finishes: Claim['operation']): Claim {
  return newClaim('revoke', owner(), now, { versionIds: [oldVersionId], finishes });
}

/**
 * After a no-overlap finish: retire and prove `old`, then release the revoke claim (or keep it
 * when the target could not be reached, for the next run to finish like an interrupted revoke).
 */
export async function proveRetiredAfterFinish(ctx: KeyContext, record: KeyRecord, old: SecretInUse, next: SecretInUse, timer: StepTimer, options: { noFailedBind?: boolean } = {}): Promise<RetireProof> {
  const settled = await settleRetired(ctx, record, old, timer, next, options);
  if (settled.proof.unavailable) return settled.proof;
  const latest = settled.record;
  const { claim: _released, attention: _previous, ...rest } = latest.state;
  const state = settled.proof.ok ? rest : { ...rest, attention: { at: new Date().toISOString(), detail: settled.proof.message } };
  await ctx.store.update(ctx.key.name, latest.revision, { versions: latest.versions, state });
  return settled.proof;
}

/**
 * A revoke that died part-way relabelled some versions `revoked` but may not have retired them
 * at the target, disabled them, or proven the rejection. Do those steps again for every version
 * it relabelled (they are idempotent), then release the claim.
 */
async function finishInterruptedRevoke(ctx: KeyContext, taken: KeyRecord): Promise<Convergence> {
  const name = ctx.key.name;
  let record = taken;
  const claim = record.state.claim!;
  const timer = new StepTimer(ctx.session.stepEvents(ctx.key.name));
  const touched = record.versions.filter((v) => v.label === 'revoked' && (claim.versionIds ? claim.versionIds.includes(v.id) : v.labelledAt >= claim.startedAt));
  const currentMeta = record.versions.find((v) => v.label === 'current');
  const current = currentMeta ? await secretOf(ctx, currentMeta) : undefined;
  const problems: string[] = [];
  const unavailable: string[] = [];
  let proven = 0;
  for (const version of touched) {
    const known = claim.outcomes?.[version.id];
    if (known === 'proven') {
      proven++;
      continue;
    }
    if (known !== undefined) {
      problems.push(known);
      continue;
    }
    const old = await secretOf(ctx, version).catch((error: unknown) => {
      if (error instanceof AdapterError && error.kind === 'not_found') return undefined;
      throw error;
    });
    if (!old) {
      // Erased without a recorded outcome: only a run from before outcomes were recorded leaves this.
      problems.push(`NEEDS A HUMAN: an interrupted revoke left ${version.fingerprint} erased from the store before its outcome was recorded; check that the target rejects it`);
      continue;
    }
    // Converging: prove it without a failed bind where the account has one password, so the
    // operation this run was started for still has its budget.
    const settled = await settleRetired(ctx, record, old, timer, current, { noFailedBind: true });
    record = settled.record;
    if (settled.proof.unavailable) unavailable.push(settled.proof.message);
    else if (settled.proof.ok) proven++;
    else problems.push(settled.proof.message);
  }
  if (unavailable.length) {
    // The claim stays (ours now): the next run proves what this one could not reach.
    return { outcome: 'unavailable', message: `an interrupted revoke is waiting: ${unavailable.join('; ')}` };
  }
  await ctx.session.emit({ type: 'audit', event: 'revoke.resumed', key: name, outcome: problems.length ? 'failed' : 'resumed', detail: { versions: touched.map((v) => v.fingerprint) } });
  const latest = (await ctx.store.read(name))!;
  const { claim: _released, ...state } = latest.state;
  const attention = problems.length ? { attention: { at: new Date().toISOString(), detail: problems.join('; ') } } : {};
  await ctx.store.update(name, latest.revision, { versions: latest.versions, state: { ...state, ...attention } });
  if (problems.length) return { outcome: 'lockout', message: problems.join('; ') };
  if (claim.finishes) {
    // The last step of a finished rotation: that rotation is now complete, and this run's own
    // operation need not rotate again (nor spend another failed bind proving it).
    const current = latest.versions.find((v) => v.label === 'current');
    return { outcome: 'rolled_forward', message: `an interrupted ${claim.finishes} was finished: the replaced version is proven rejected${current ? `; ${current.fingerprint} is current` : ''}`, ...(current ? { fingerprint: current.fingerprint } : {}) };
  }
  return { outcome: 'cleared', message: `an interrupted revoke was finished (${proven} version(s) retired and proven rejected)` };
}
