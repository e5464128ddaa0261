import { isClaimStale, newClaim } from '../core/claim.js';
import { AdapterError, ConflictError, ExitCode, UsageError } from '../core/errors.js';
import type { SecretInUse } from '../targets/target.js';
import type { VersionMeta } from '../core/model.js';
import { versionByLabel } from '../core/model.js';
import { revokeVersions } from '../core/transitions.js';
import { convergeStaleClaim, convergenceEndsOperation } from './converge.js';
import { owner, secretOf, type KeyContext , thisRun } from './key-context.js';
import { StepTimer, type KeyResult } from './result.js';
import { settleRetired, type ReplacedOnAccount } from './retire.js';
import { REVOKE_STARTED, REVOKE_VERSION, type RevokeOperation } from './events.js';

export type RevokeSelection = { which: 'all' | 'previous' | 'current' } | { version: string };

/** A version named by id, by fingerprint, or by the fingerprint's hex without "sha256:". */
function matchesVersion(version: VersionMeta, wanted: string): boolean {
  return version.id === wanted || version.fingerprint === wanted || version.fingerprint === `sha256:${wanted}`;
}

/** Which versions a revoke touches: by fingerprint or id, or by role. */
export function selectVersions(versions: VersionMeta[], selection: RevokeSelection): VersionMeta[] {
  const live = versions.filter((v) => v.label === 'current' || v.label === 'previous');
  if ('version' in selection) {
    const found = versions.find((v) => matchesVersion(v, selection.version));
    if (!found) throw new UsageError(`--fingerprint: no version "${selection.version}" (use a fingerprint or id from "provkey history")`, 'input.version');
    if (found.label === 'revoked') throw new UsageError(`--fingerprint: ${found.fingerprint} is already revoked`, 'input.version');
    return [found];
  }
  if (selection.which === 'previous') return live.filter((v) => v.label === 'previous');
  if (selection.which === 'current') return live.filter((v) => v.label === 'current');
  return live;
}

/**
 * Revoke: the target is made to reject each selected version, the store disables it, and a
 * rejected request proves it. Previous versions go first so a failure leaves the current one.
 */
export async function revokeKey(ctx: KeyContext, selection: RevokeSelection, operation: RevokeOperation = 'revoke', evidence: { replaced?: ReplacedOnAccount } = {}): Promise<KeyResult> {
  const name = ctx.key.name;
  const timer = new StepTimer(ctx.session.stepEvents(ctx.key.name));
  let record = await ctx.store.read(name);
  if (!record) throw new UsageError(`key ${name} has no versions in store "${ctx.key.storeName}"`, 'key.empty');
  const base = { key: name, operation, steps: timer.steps, tests: timer.tests };
  let converged: string | undefined;
  if (record.state.claim) {
    const c = record.state.claim;
    if (!isClaimStale(c, new Date(), thisRun())) {
      // A scheduled grace-end simply comes back next run; an admin is told to try again.
      const scheduled = operation === 'grace-end';
      return { ...base, outcome: 'skipped', ok: scheduled, exitCode: scheduled ? ExitCode.ok : ExitCode.failed, message: `${c.operation} in progress since ${c.startedAt} (pid ${c.owner.pid} on ${c.owner.host}); try again later`, ms: timer.elapsed() };
    }
    // A run died part-way: converge it first, then revoke what is still live.
    const convergence = await timer.run('converge', () => convergeStaleClaim(ctx, record!));
    if (convergence.outcome === 'busy') return { ...base, outcome: 'skipped', ok: false, exitCode: ExitCode.failed, message: convergence.message, ms: timer.elapsed() };
    if (convergence.outcome === 'lockout') return { ...base, outcome: 'lockout', ok: false, exitCode: ExitCode.needsHuman, message: convergence.message, ms: timer.elapsed() };
    if (convergence.outcome === 'unavailable' || convergence.outcome === 'needs_human') {
      const ended = convergenceEndsOperation(convergence)!;
      return { ...base, ...ended, ms: timer.elapsed() };
    }
    converged = convergence.message;
    record = (await ctx.store.read(name))!;
  }
  // A grace end another run (or the converged one) already carried out is done, not an error.
  const alreadyDone = (converged !== undefined || operation === 'grace-end') && 'version' in selection && record.versions.some((v) => v.label === 'revoked' && matchesVersion(v, selection.version));
  const chosen = alreadyDone ? [] : selectVersions(record.versions, selection).sort((a, b) => (a.label === 'current' ? 1 : 0) - (b.label === 'current' ? 1 : 0));
  if (chosen.length === 0) {
    return { ...base, outcome: 'revoked', ok: true, exitCode: ExitCode.ok, message: converged ?? 'nothing to revoke', ms: timer.elapsed() };
  }
  try {
    record = await timer.run('claim', () =>
      ctx.store.update(name, record!.revision, { versions: record!.versions, state: { ...record!.state, claim: newClaim('revoke', owner(), new Date()) } }),
    );
  } catch (error) {
    if (error instanceof ConflictError) {
      const scheduled = operation === 'grace-end';
      return { ...base, outcome: 'skipped', ok: scheduled, exitCode: scheduled ? ExitCode.ok : ExitCode.failed, message: 'another run changed this key; try again', ms: timer.elapsed() };
    }
    throw error;
  }
  const problems: string[] = [];
  const unavailable: string[] = [];
  let finished = false;
  try {
    const currentMeta = versionByLabel(record, 'current');
    const current = currentMeta && !chosen.some((v) => v.id === currentMeta.id) ? await secretOf(ctx, currentMeta) : undefined;
    for (const version of chosen) {
      let old: SecretInUse | undefined;
      try {
        old = await secretOf(ctx, version);
      } catch (error) {
        // Only a value that is really gone is handled here; a timeout or a sealed store stops the revoke.
        if (!(error instanceof AdapterError && error.kind === 'not_found')) throw error;
      }
      // Audited before the relabel (the claim is held): every store change has its audit line.
      await ctx.session.emit({ type: 'audit', event: REVOKE_STARTED[operation], key: name, fingerprint: version.fingerprint, versionId: version.id, detail: { label: version.label, valueInStore: old !== undefined } });
      // Relabel first: an app reading the store (store applier) stops accepting it from here on.
      record = await ctx.store.update(name, record.revision, { versions: revokeVersions(record, [version.id], new Date()), state: record.state });
      if (!old) {
        await ctx.store.disableVersion(name, version.id);
        problems.push(`NEEDS A HUMAN: the value of ${version.fingerprint} is gone from the store, so provkey can neither retire it at the target nor prove it is rejected`);
        continue;
      }
      const settled = await settleRetired(ctx, record, old, timer, current, evidence.replaced ? { replaced: evidence.replaced } : {});
      record = settled.record;
      const proof = settled.proof;
      await ctx.session.emit({ type: 'audit', event: REVOKE_VERSION[operation], key: name, outcome: proof.ok ? 'ok' : 'failed', fingerprint: version.fingerprint, versionId: version.id, detail: { label: version.label, proven: proof.ok && !proof.skipped, ...(proof.unavailable ? { unavailable: true } : {}) } });
      if (proof.unavailable) unavailable.push(proof.message);
      else if (!proof.ok) problems.push(proof.message);
    }
    // Could not reach the target for some version: the claim stays, the next run proves it.
    finished = unavailable.length === 0;
  } finally {
    // On an error the claim stays: the next run finds it stale and finishes this revoke
    // (retire and prove every version it relabelled). Otherwise it is released here.
    if (finished) {
      const latest = (await ctx.store.read(name))!;
      const { claim: _released, attention: _previous, lastTest, ...rest } = latest.state;
      // A last test of a version that is now revoked says nothing about the key any more.
      const stillCurrent = latest.versions.some((v) => v.label === 'current' && v.id === lastTest?.versionId);
      const state = { ...rest, ...(lastTest && stillCurrent ? { lastTest } : {}) };
      const attention = problems.length ? { attention: { at: new Date().toISOString(), detail: problems.join('; ') } } : {};
      await ctx.store.update(name, latest.revision, { versions: latest.versions, state: { ...state, ...attention } });
    }
  }
  const fingerprints = chosen.map((v) => v.fingerprint).join(', ');
  if (unavailable.length) {
    return { ...base, outcome: 'failed', ok: false, exitCode: ExitCode.unavailable, message: [...problems, ...unavailable].join('; '), ms: timer.elapsed() };
  }
  if (problems.length) {
    return { ...base, outcome: 'lockout', ok: false, exitCode: ExitCode.needsHuman, message: problems.join('; '), ms: timer.elapsed() };
  }
  return { ...base, outcome: 'revoked', ok: true, exitCode: ExitCode.ok, message: `revoked ${fingerprints}`, fingerprint: chosen.at(-1)!.fingerprint, ms: timer.elapsed() };
}
